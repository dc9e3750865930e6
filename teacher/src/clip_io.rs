//! Writing clips (`[C, T, H, W]` in [−1, 1]) as an animated PNG (APNG: every browser plays it,
//! and it is lossless, unlike GIF's palette) and as a frame strip PNG (frames left to right).
//! Every `shape` here is a clip's (`frames` = T).

use std::path::Path;

use crate::error::{Error, Result};
use crate::image_io::{from_u8, grid, to_u8, write_png};
use crate::unet::ImageShape;

/// Frames per second of every animation fewstep writes (a clip of 8 frames loops each second).
pub const FPS: u16 = 8;

/// Frame t of a clip, `[C, H, W]`.
pub fn frame(clip: &[f32], shape: ImageShape, t: usize) -> Vec<f32> {
    let hw = shape.height * shape.width;
    (0..shape.channels)
        .flat_map(|c| {
            let at = (c * shape.frames + t) * hw;
            clip[at..at + hw].iter().copied()
        })
        .collect()
}

/// APNG bytes of a clip: `fps` frames per second, looping; each frame enlarged `scale`×.
pub fn apng_bytes(clip: &[f32], shape: ImageShape, fps: u16, scale: usize) -> Result<Vec<u8>> {
    let (scale, frames) = (scale.max(1), shape.frames);
    let (w, h) = (shape.width * scale, shape.height * scale);
    let color = match shape.channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        c => {
            return Err(Error::Invalid(format!(
                "clips have 1 or 3 channels, not {c}"
            )));
        }
    };
    let enc_err = |e: png::EncodingError| Error::Invalid(format!("encoding APNG: {e}"));
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_animated(frames as u32, 0).map_err(enc_err)?;
        enc.set_frame_delay(1, fps.max(1)).map_err(enc_err)?;
        let mut writer = enc.write_header().map_err(enc_err)?;
        let plane = shape.height * shape.width;
        for t in 0..frames {
            let f = frame(clip, shape, t);
            let mut px = Vec::with_capacity(w * h * shape.channels);
            for y in 0..h {
                for x in 0..w {
                    let i = (y / scale) * shape.width + x / scale;
                    for c in 0..shape.channels {
                        px.push(to_u8(f[c * plane + i]));
                    }
                }
            }
            writer.write_image_data(&px).map_err(enc_err)?;
        }
        writer.finish().map_err(enc_err)?;
    }
    Ok(out)
}

/// Write a clip as an animated PNG, atomically.
pub fn write_apng(path: &Path, clip: &[f32], shape: ImageShape, fps: u16) -> Result<()> {
    let scale = crate::image_io::display_scale(shape.height);
    crate::checkpoint::write_atomic(path, &apng_bytes(clip, shape, fps, scale)?)
}

/// Write clips as a strip PNG: one row per clip, its frames left to right.
pub fn write_strip(path: &Path, clips: &[&[f32]], shape: ImageShape) -> Result<()> {
    let all: Vec<Vec<f32>> = clips
        .iter()
        .flat_map(|c| (0..shape.frames).map(move |t| frame(c, shape, t)))
        .collect();
    let refs: Vec<&[f32]> = all.iter().map(Vec::as_slice).collect();
    let scale = crate::image_io::display_scale(shape.height);
    let (g, gs) = grid(&refs, shape.frame(), shape.frames, scale);
    write_png(path, &g, gs)
}

/// Write clips as one animated grid (`cols` clips a row, each enlarged to about 64 px),
/// atomically: frame t of the animation is the grid of every clip's frame t.
pub fn write_grid_apng(
    path: &Path,
    clips: &[&[f32]],
    shape: ImageShape,
    cols: usize,
    fps: u16,
) -> Result<()> {
    let (scale, frames) = (crate::image_io::display_scale(shape.height), shape.frames);
    let grids: Vec<(Vec<f32>, ImageShape)> = (0..frames)
        .map(|t| {
            let f: Vec<Vec<f32>> = clips.iter().map(|c| frame(c, shape, t)).collect();
            let refs: Vec<&[f32]> = f.iter().map(Vec::as_slice).collect();
            grid(&refs, shape.frame(), cols, scale)
        })
        .collect();
    let gs = grids[0].1;
    let plane = gs.height * gs.width;
    // Reassemble the frames' grids as one clip `[C, T, GH, GW]`.
    let mut clip = vec![0.0f32; gs.channels * frames * plane];
    for (t, (g, _)) in grids.iter().enumerate() {
        for c in 0..gs.channels {
            clip[(c * frames + t) * plane..][..plane].copy_from_slice(&g[c * plane..][..plane]);
        }
    }
    let anim = ImageShape { frames, ..gs };
    crate::checkpoint::write_atomic(path, &apng_bytes(&clip, anim, fps, 1)?)
}

/// Read one sample file back: an animated PNG as a clip `[C, T, H, W]` (its frames, in order),
/// a still PNG as an image; `channels` (1 or 3) is what the caller works in — grey is
/// replicated to RGB, RGB averaged to grey.
pub fn read_clip(path: &Path, channels: usize) -> Result<(Vec<f32>, ImageShape)> {
    let bad = |m: String| Error::Data {
        path: path.to_path_buf(),
        message: m,
    };
    let file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| bad(format!("unreadable PNG: {e}")))?;
    let Some(actl) = reader.info().animation_control else {
        return crate::image_io::read_png(path, channels);
    };
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    let frames = actl.num_frames as usize;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("frame too large".into()))?;
    let mut buf = vec![0u8; size];
    let mut planes: Vec<Vec<f32>> = vec![Vec::with_capacity(frames * w * h); channels];
    for _ in 0..frames {
        let info = reader
            .next_frame(&mut buf)
            .map_err(|e| bad(format!("unreadable APNG frame: {e}")))?;
        if (info.width as usize, info.height as usize) != (w, h) {
            return Err(bad(
                "has partial frames: fewstep reads APNGs whose frames cover the whole image".into(),
            ));
        }
        let src = match (info.color_type, info.bit_depth) {
            (png::ColorType::Grayscale, png::BitDepth::Eight) => 1,
            (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
            (c, d) => {
                return Err(bad(format!(
                    "is {c:?} at {d:?}: expected 8-bit grey or RGB"
                )));
            }
        };
        let px = &buf[..w * h * src];
        for (c, plane) in planes.iter_mut().enumerate() {
            plane.extend(px.chunks(src).map(|p| match (src, channels) {
                (1, _) => from_u8(p[0]),
                (_, 3) => from_u8(p[c]),
                _ => (from_u8(p[0]) + from_u8(p[1]) + from_u8(p[2])) / 3.0,
            }));
        }
    }
    let shape = ImageShape {
        channels,
        height: h,
        width: w,
        frames,
    };
    Ok((planes.into_iter().flatten().collect(), shape))
}
