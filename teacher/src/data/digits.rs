//! The embedded 8×8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", the copy
//! scikit-learn ships): 1,797 rows of 64 pixels in 0–16 and a label, the zero-setup default.

use std::io::Read;

use flate2::read::GzDecoder;

use super::{Dataset, Split, in_split};
use crate::unet::ImageShape;

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");
/// Pixel values run 0..=16 in this dataset.
const MAX_VALUE: f32 = 16.0;

/// All 1,797 digits split 4:1 into train/test by index (see [`in_split`]).
pub fn load(split: Split) -> Dataset {
    let mut text = String::new();
    GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .expect("the embedded digits are a valid gzip CSV, checked by tests");
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if !in_split(i, split) {
            continue;
        }
        let vals: Vec<f32> = line
            .split(',')
            .map(|v| {
                v.trim()
                    .parse::<f32>()
                    .expect("embedded digits hold numbers")
            })
            .collect();
        assert_eq!(
            vals.len(),
            65,
            "embedded digits rows have 64 pixels and a label"
        );
        images.extend(vals[..64].iter().map(|v| v / MAX_VALUE * 2.0 - 1.0));
        labels.push(vals[64] as u8);
    }
    Dataset {
        images,
        labels,
        shape: ImageShape {
            channels: 1,
            height: 8,
            width: 8,
            frames: 1,
        },
        num_classes: 10,
        class_names: (0..10).map(|d| d.to_string()).collect(),
    }
}
