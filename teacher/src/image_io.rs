//! Writing samples as PNG: one file per image at native resolution, and a grid.

use std::path::Path;

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::unet::ImageShape;

/// [−1, 1] → 0..=255.
pub fn to_u8(v: f32) -> u8 {
    (((v + 1.0) * 0.5 * 255.0).round()).clamp(0.0, 255.0) as u8
}

/// 0..=255 → [−1, 1], the inverse of [`to_u8`] up to rounding.
pub fn from_u8(p: u8) -> f32 {
    p as f32 / 255.0 * 2.0 - 1.0
}

/// Encode one image (`C·H·W` values in [−1, 1]) as PNG bytes: grayscale for 1 channel, RGB for 3.
pub fn png_bytes(pixels: &[f32], shape: ImageShape) -> Vec<u8> {
    let (w, h) = (shape.width as u32, shape.height as u32);
    let plane = shape.height * shape.width;
    let mut out = std::io::Cursor::new(Vec::new());
    if shape.channels == 1 {
        let img: GrayImage =
            ImageBuffer::from_fn(w, h, |x, y| Luma([to_u8(pixels[(y * w + x) as usize])]));
        img.write_to(&mut out, image::ImageFormat::Png)
    } else {
        let img: RgbImage = ImageBuffer::from_fn(w, h, |x, y| {
            let i = (y * w + x) as usize;
            Rgb([
                to_u8(pixels[i]),
                to_u8(pixels[plane + i]),
                to_u8(pixels[2 * plane + i]),
            ])
        });
        img.write_to(&mut out, image::ImageFormat::Png)
    }
    .expect("encoding PNG into memory cannot fail");
    out.into_inner()
}

/// Write one image atomically.
pub fn write_png(path: &Path, pixels: &[f32], shape: ImageShape) -> Result<()> {
    crate::checkpoint::write_atomic(path, &png_bytes(pixels, shape))
}

/// Enlargement that shows an image of `height` pixels at about 64 (1× to 8×, nearest
/// neighbour), so 8×8 digits and 16×16 clips stay visible in grids and strips.
pub fn display_scale(height: usize) -> usize {
    (64 / height.max(1)).clamp(1, 8)
}

/// Tile `images` (each `C·H·W`) into a grid of `cols` columns with a 1-pixel border, each cell
/// enlarged `scale`× (nearest) so small images stay visible.
pub fn grid(
    images: &[&[f32]],
    shape: ImageShape,
    cols: usize,
    scale: usize,
) -> (Vec<f32>, ImageShape) {
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols);
    let (ch, cw) = (shape.height * scale + 1, shape.width * scale + 1);
    let gshape = ImageShape {
        channels: shape.channels,
        height: rows * ch + 1,
        width: cols * cw + 1,
        frames: 1,
    };
    let plane = gshape.height * gshape.width;
    // Mid-grey borders separate cells without competing with white strokes.
    let mut out = vec![0.0f32; shape.channels * plane];
    for (k, img) in images.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        for ch_i in 0..shape.channels {
            for y in 0..shape.height * scale {
                for x in 0..shape.width * scale {
                    let src =
                        ch_i * shape.height * shape.width + (y / scale) * shape.width + x / scale;
                    let (gy, gx) = (1 + r * ch + y, 1 + c * cw + x);
                    out[ch_i * plane + gy * gshape.width + gx] = img[src];
                }
            }
        }
    }
    (out, gshape)
}

/// Read a PNG written by [`write_png`] back to [−1, 1] values (for tests and eval).
pub fn read_png(path: &Path, channels: usize) -> Result<(Vec<f32>, ImageShape)> {
    let img = image::open(path).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        message: format!("unreadable image: {e}"),
    })?;
    let shape = ImageShape {
        channels,
        height: img.height() as usize,
        width: img.width() as usize,
        frames: 1,
    };
    let values = if channels == 1 {
        img.to_luma8().pixels().map(|p| from_u8(p.0[0])).collect()
    } else {
        let rgb = img.to_rgb8();
        (0..3)
            .flat_map(|c| {
                rgb.pixels()
                    .map(move |p| from_u8(p.0[c]))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    Ok((values, shape))
}
