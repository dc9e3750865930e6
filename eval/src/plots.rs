//! PNG plots with plotters: metric-vs-NFE and metric-vs-guidance line charts with 95% error
//! bars and the real-vs-real floor as a line. Text is drawn with an embedded DejaVu Sans, so
//! plots render the same on machines without system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use crate::error::{EvalError, Result};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One labelled line of (x, y) points, with a 95% interval (lo, hi) per point or none.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Empty, or one (lo, hi) per point: drawn as error bars.
    pub errors: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            errors: Vec::new(),
        }
    }
}

/// Axis description of a line chart.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Logarithmic x axis (NFE spans 1 to 100).
    pub log_x: bool,
    /// A horizontal reference line (the real-vs-real floor) and its legend label.
    pub floor: Option<(f64, String)>,
    /// A linear y axis starts at 0, so noise between close values is not zoomed into a trend.
    pub y_from_zero: bool,
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Samples {
        path: path.to_path_buf(),
        message: format!("plotting failed: {e}"),
    }
}

/// A log axis labels only 1, 2, 5 × 10^k (plotters labels every grid line, which crowds
/// past 50); the other grid lines stay unlabelled.
fn log_tick_label(v: f64) -> String {
    let m = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0, 10.0].iter().any(|k| (m - k).abs() < 1e-6) {
        format!("{}", (v * 1e6).round() / 1e6)
    } else {
        String::new()
    }
}

/// The plotted ranges: x and y bounds (padded), and whether y goes on a log axis.
struct Ranges {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    log_y: bool,
}

/// The finite points of one series.
fn finite_points(s: &Series) -> Vec<(f64, f64)> {
    s.points
        .iter()
        .copied()
        .filter(|p| p.1.is_finite())
        .collect()
}

/// Bounds of the finite points of all `series` (an error if there are none), padded for
/// drawing; a y range over more than 20× goes on a log axis.
fn ranges(path: &Path, chart: &Chart, series: &[Series]) -> Result<Ranges> {
    let mut pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.1.is_finite())
        .collect();
    // Error bars and the floor must fit too.
    let bars = series.iter().flat_map(|s| s.points.iter().zip(&s.errors));
    let ends: Vec<(f64, f64)> = bars.flat_map(|(p, e)| [(p.0, e.0), (p.0, e.1)]).collect();
    pts.extend(ends.into_iter().filter(|p| p.1.is_finite() && p.1 > 0.0));
    if let (Some((f, _)), Some(&(x, _))) = (&chart.floor, pts.first()) {
        pts.extend(
            [(x, *f)]
                .into_iter()
                .filter(|p| p.1.is_finite() && p.1 > 0.0),
        );
    }
    if pts.is_empty() {
        return Err(plot_err(path, "no finite points"));
    }
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    // A y range over more than 20× (a model that fails at 1 step next to good ones) goes on a
    // log axis, so the good models stay readable.
    let log_y = y0 > 0.0 && y1 / y0 > 20.0;
    let (y0, y1) = if log_y {
        (y0 * 0.8, y1 * 1.25)
    } else {
        let pad = ((y1 - y0) * 0.08).max(1e-9);
        let low = if chart.y_from_zero && y0 >= 0.0 {
            0.0
        } else {
            (y0 - pad).min(0.0f64.max(y0 - pad))
        };
        (low, y1 + pad)
    };
    if x0 == x1 {
        x0 *= 0.5;
        x1 *= 2.0;
    }
    Ok(Ranges {
        x0,
        x1,
        y0,
        y1,
        log_y,
    })
}

/// Draw `series` as lines with markers into a PNG at `path` (written atomically).
pub fn line_chart(path: &Path, chart: &Chart, series: &[Series]) -> Result<()> {
    register_font();
    let (w, h) = (800u32, 500u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let r = ranges(path, chart, series)?;
    render(&mut buf, (w, h), path, chart, series, &r)?;
    let img = image::RgbImage::from_raw(w, h, buf).expect("buffer sized w·h·3");
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .expect("in-memory PNG encoding");
    teacher::checkpoint::write_atomic(path, png.get_ref())?;
    Ok(())
}

/// Render the chart into the RGB buffer `buf` of `size` pixels, on log or linear axes as
/// `chart.log_x` and `r.log_y` say.
fn render(
    buf: &mut [u8],
    size: (u32, u32),
    path: &Path,
    chart: &Chart,
    series: &[Series],
    r: &Ranges,
) -> Result<()> {
    let root = BitMapBackend::with_buffer(buf, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(chart.title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70);
    let (x0, x1, y0, y1) = (r.x0, r.x1, r.y0, r.y1);
    let xp = (x1 - x0) * 0.05;
    let err = |e| plot_err(path, e);
    match (chart.log_x, r.log_y) {
        (true, true) => draw(
            builder
                .build_cartesian_2d((x0 * 0.8..x1 * 1.25).log_scale(), (y0..y1).log_scale())
                .map_err(err)?,
            path,
            chart,
            series,
            r.log_y,
        )?,
        (true, false) => draw(
            builder
                .build_cartesian_2d((x0 * 0.8..x1 * 1.25).log_scale(), y0..y1)
                .map_err(err)?,
            path,
            chart,
            series,
            r.log_y,
        )?,
        (false, true) => draw(
            builder
                .build_cartesian_2d(x0 - xp..x1 + xp, (y0..y1).log_scale())
                .map_err(err)?,
            path,
            chart,
            series,
            r.log_y,
        )?,
        (false, false) => draw(
            builder
                .build_cartesian_2d(x0 - xp..x1 + xp, y0..y1)
                .map_err(err)?,
            path,
            chart,
            series,
            r.log_y,
        )?,
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

/// Tick label of an axis value: 1, 2, 5 × 10^k on a log axis, one decimal on a linear one.
fn tick_label(log: bool, v: f64) -> String {
    if log {
        log_tick_label(v)
    } else {
        format!("{v:.1}")
    }
}

/// Draw the mesh, the series and the legend into a chart context (any axis kinds).
fn draw<'a, 'b: 'a, X, Y>(
    mut ctx: ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>,
    path: &Path,
    chart: &Chart,
    series: &[Series],
    log_y: bool,
) -> Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let x_label = |v: &f64| tick_label(chart.log_x, *v);
    let y_label = |v: &f64| tick_label(log_y, *v);
    let y_desc = if log_y {
        format!("{} (log)", chart.y_label)
    } else {
        chart.y_label.to_string()
    };
    ctx.configure_mesh()
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .max_light_lines(3)
        .x_desc(chart.x_label)
        .y_desc(y_desc.as_str())
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let points = finite_points(s);
        ctx.draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        ctx.draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(|e| plot_err(path, e))?;
        let bars = s.points.iter().zip(&s.errors);
        let bars = bars.filter(|(p, e)| p.1.is_finite() && e.0.is_finite() && e.1.is_finite());
        // On a log axis a bar cannot reach 0: its low end is kept just above the axis floor.
        let lo = |v: f64| if log_y { v.max(f64::MIN_POSITIVE) } else { v };
        ctx.draw_series(
            bars.map(|(p, e)| ErrorBar::new_vertical(p.0, lo(e.0), p.1, e.1, c.stroke_width(1), 8)),
        )
        .map_err(|e| plot_err(path, e))?;
    }
    if let Some((f, label)) = &chart.floor {
        let (x0, x1) = (ctx.x_range().start, ctx.x_range().end);
        let grey = RGBColor(90, 90, 90);
        ctx.draw_series(DashedLineSeries::new(
            vec![(x0, *f), (x1, *f)],
            6,
            4,
            grey.stroke_width(1),
        ))
        .map_err(|e| plot_err(path, e))?
        .label(label.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    }
    ctx.configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_tick_label;

    #[test]
    fn log_axis_labels_one_two_five() {
        let labels: Vec<String> = [1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 70.0, 90.0, 100.0, 0.5]
            .map(log_tick_label)
            .into();
        assert_eq!(
            labels,
            ["1", "2", "", "5", "10", "20", "", "", "100", "0.5"]
        );
    }
}
