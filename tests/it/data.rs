//! Data loaders: the embedded digits, MNIST IDX files, class folders, and their errors.

use teacher::data::{DataConfig, DataSource, Split};
use teacher::error::Error;

use crate::fixtures::{mnist_dir, temp_dir};

#[test]
fn embedded_digits_split_and_range() {
    let train = teacher::data::digits::load(Split::Train);
    let test = teacher::data::digits::load(Split::Test);
    // 1,797 rows; every 5th (index ≡ 4 mod 5) is test: ⌊1797/5⌋ = 359 test, 1,438 train.
    assert_eq!(train.len() + test.len(), 1797);
    assert_eq!(test.len(), 359);
    assert_eq!(
        train.shape,
        teacher::unet::ImageShape {
            channels: 1,
            height: 8,
            width: 8,
            frames: 1
        }
    );
    assert!(train.images.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert!(train.labels.iter().all(|&l| l < 10));
    // Row 0 of the CSV is a 0 (scikit-learn's digits.target[0] == 0).
    assert_eq!(train.labels[0], 0);
}

#[test]
fn mnist_idx_loads_with_known_labels() {
    let Some(dir) = mnist_dir() else {
        eprintln!("skipped: ../shared/datasets/mnist not present");
        return;
    };
    let test = teacher::data::idx::load_mnist(&dir, Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.shape.height, 28);
    let train = teacher::data::idx::load_mnist(&dir, Split::Train).unwrap();
    assert_eq!(train.len(), 60_000);
    // The first ten MNIST training labels (shared/datasets/mnist/README.md).
    assert_eq!(&train.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
}

fn write_gz(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    std::fs::write(path, e.finish().unwrap()).unwrap();
}

fn idx_images(n: u32, h: u32, w: u32, magic: u32) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in [n, h, w] {
        v.extend(d.to_be_bytes());
    }
    v.extend(std::iter::repeat_n(7u8, (n * h * w) as usize));
    v
}

fn idx_labels(n: u32) -> Vec<u8> {
    let mut v = 0x0801u32.to_be_bytes().to_vec();
    v.extend(n.to_be_bytes());
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

#[test]
fn idx_errors_name_the_file_and_the_problem() {
    let dir = temp_dir("idx");
    // Missing directory.
    let e = teacher::data::idx::load_mnist(&dir.join("nope"), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("--data"), "{e}");
    // Missing files.
    let e = teacher::data::idx::load_mnist(&dir, Split::Test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("t10k-images-idx3-ubyte"), "{e}");
    // Bad magic (labels magic in the images file).
    write_gz(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &idx_images(3, 4, 4, 0x0801),
    );
    write_gz(&dir.join("t10k-labels-idx1-ubyte.gz"), &idx_labels(3));
    let e = teacher::data::idx::load_mnist(&dir, Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad IDX magic 0x00000801") && e.contains("t10k-images"),
        "{e}"
    );
    // Truncated (size disagrees with header), raw (uncompressed) this time.
    std::fs::remove_file(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let mut img = idx_images(3, 4, 4, 0x0803);
    img.truncate(img.len() - 5);
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), &img).unwrap();
    let e = teacher::data::idx::load_mnist(&dir, Split::Test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
    // Count mismatch between images and labels.
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx_images(4, 4, 4, 0x0803),
    )
    .unwrap();
    let e = teacher::data::idx::load_mnist(&dir, Split::Test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 labels") && e.contains("4 images"), "{e}");
    // And a good pair loads.
    write_gz(&dir.join("t10k-labels-idx1-ubyte.gz"), &idx_labels(4));
    let ok = teacher::data::idx::load_mnist(&dir, Split::Test).unwrap();
    assert_eq!((ok.len(), ok.shape.height, ok.shape.width), (4, 4, 4));
}

fn png(path: &std::path::Path, w: u32, h: u32) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x + y) * 20) as u8]))
        .save(path)
        .unwrap();
}

#[test]
fn folder_loader_and_its_errors() {
    let dir = temp_dir("folder");
    let cfg = |res: Option<usize>| DataConfig {
        source: DataSource::Folder,
        path: Some(dir.clone()),
        resolution: res,
        channels: 1,
        clips: None,
        latents: None,
    };
    // No class folders.
    let e = cfg(None).load(None, Split::Train).unwrap_err().to_string();
    assert!(e.contains("no class sub-folders"), "{e}");
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
    }
    for i in 0..5 {
        png(&dir.join("cat").join(format!("{i}.png")), 6, 6);
    }
    // Empty class folder.
    let e = cfg(None).load(None, Split::Train).unwrap_err();
    assert!(matches!(e, Error::Data { .. }));
    assert!(
        e.to_string().contains("dog") && e.to_string().contains("empty class folder"),
        "{e}"
    );
    // Mixed sizes without `data.resolution`.
    png(&dir.join("dog").join("0.png"), 6, 6);
    png(&dir.join("dog").join("1.png"), 9, 7);
    let e = cfg(None).load(None, Split::Train).unwrap_err().to_string();
    assert!(
        e.contains("mixed sizes") && e.contains("data.resolution"),
        "{e}"
    );
    // With a resolution every image is resized.
    let d = cfg(Some(8)).load(None, Split::Train).unwrap();
    assert_eq!((d.shape.height, d.shape.width, d.num_classes), (8, 8, 2));
    assert_eq!(d.class_names, vec!["cat", "dog"]);
    assert_eq!(
        d.len(),
        4 + 2,
        "every 5th image per class is held out for test"
    );
}

#[test]
fn file_sources_need_a_path() {
    let cfg = DataConfig {
        source: DataSource::Mnist,
        ..Default::default()
    };
    let e = cfg.load(None, Split::Train).unwrap_err().to_string();
    assert!(e.contains("--data DIR"), "{e}");
}

#[test]
fn moving_digits_are_deterministic_bounded_and_keep_each_digit_whole() {
    use teacher::data::moving::{MovingDigitsConfig, moving_digits};
    let src = DataConfig::default().load(None, Split::Train).unwrap();
    let cfg = MovingDigitsConfig::default(); // 8 frames of 16×16, one 8×8 digit, ≤ 2 px/frame
    let a = moving_digits(&src, &cfg, 12, 7).unwrap();
    assert_eq!(
        a,
        moving_digits(&src, &cfg, 12, 7).unwrap(),
        "same seed, same clips"
    );
    assert_ne!(a.images, moving_digits(&src, &cfg, 12, 8).unwrap().images);
    // Clip i depends on (seed, i) only: the first 5 of 12 are the 5 clips of a shorter set.
    let short = moving_digits(&src, &cfg, 5, 7).unwrap();
    assert_eq!(&a.images[..short.images.len()], &short.images[..]);
    assert_eq!(a.images.len(), 12 * 8 * 16 * 16);
    assert!(a.images.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert!(a.labels.iter().all(|&l| l < 10));
    let ink = |f: &[f32]| f.iter().map(|v| f64::from(v + 1.0) / 2.0).sum::<f64>();
    for i in 0..a.len() {
        // The digit is always whole inside the frame (bounces keep it in): every frame carries
        // the same ink, and it moves (a non-zero velocity changes the frame every step).
        let f0 = a.frame(i, 0);
        assert!(ink(&f0) > 1.0, "clip {i} is empty");
        for t in 1..8 {
            let f = a.frame(i, t);
            assert!(
                (ink(&f) - ink(&f0)).abs() < 1e-3,
                "clip {i} frame {t} lost ink"
            );
        }
        assert_ne!(a.frame(i, 0), a.frame(i, 1), "clip {i} does not move");
    }
    // Two digits overlap by the brighter pixel: never more ink than both apart.
    let two = MovingDigitsConfig {
        digits: 2,
        ..cfg.clone()
    };
    let b = moving_digits(&src, &two, 4, 1).unwrap();
    assert_eq!(b.labels.len(), 4);
    // Bad sizes name the setting.
    let e = moving_digits(&src, &MovingDigitsConfig { size: 6, ..cfg }, 1, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("size = 6") && e.contains("side 8"), "{e}");
}

#[test]
fn clips_write_as_animated_png_and_frame_strip() {
    use teacher::clip_io::{apng_bytes, write_apng, write_strip};
    use teacher::data::moving::{MovingDigitsConfig, moving_digits};
    let src = DataConfig::default().load(None, Split::Train).unwrap();
    let cfg = MovingDigitsConfig::default();
    let c = moving_digits(&src, &cfg, 2, 3).unwrap();
    // Decoded back: 8 frames of 16×16 (scale 1), and frame 0's pixels are the clip's frame 0.
    let bytes = apng_bytes(c.image(0), c.shape, 8, 1).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let actl = reader.info().animation_control.expect("an animated PNG");
    assert_eq!((actl.num_frames, actl.num_plays), (8, 0));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (16, 16));
    let want: Vec<u8> = c
        .frame(0, 0)
        .iter()
        .map(|&v| teacher::image_io::to_u8(v))
        .collect();
    assert_eq!(&buf[..256], &want[..]);
    let dir = temp_dir("clips");
    write_apng(&dir.join("clip.png"), c.image(1), c.shape, 8).unwrap();
    write_strip(&dir.join("strip.png"), &[c.image(0), c.image(1)], c.shape).unwrap();
    let strip = image::open(dir.join("strip.png")).unwrap();
    // 8 frames × (16·4 + 1) + 1 wide, 2 clips × 65 + 1 high (cells enlarged 4×, 1-px borders).
    assert_eq!((strip.width(), strip.height()), (8 * 65 + 1, 2 * 65 + 1));
    // The command a person uses to look at the data: animated clips and a strip; bad sizes named.
    let out = dir.join("cli");
    let said = crate::fixtures::ok(crate::fixtures::fewstep(&[
        "clips",
        "--n",
        "3",
        "--digits",
        "2",
        "--size",
        "20",
        "--out",
        &out.display().to_string(),
    ]));
    assert!(said.contains("wrote 3 clips of 8 frames 20×20"), "{said}");
    for f in ["clip-000.png", "clip-002.png", "strip.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let e = crate::fixtures::err(crate::fixtures::fewstep(&[
        "clips",
        "--size",
        "4",
        "--out",
        &out.display().to_string(),
    ]));
    assert!(e.contains("size = 4"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn idx_files_with_no_images_or_no_pixels_are_refused_by_name() {
    // Before: 0 images panicked ("cannot sample empty range"), 0×0 images inside GroupNorm.
    for (n, side, what) in [(0u32, 28u32, "holds 0 examples"), (5, 0, "of 0×0")] {
        let dir = temp_dir(&format!("idx-empty-{n}-{side}"));
        std::fs::write(
            dir.join("train-images-idx3-ubyte"),
            idx_images(n, side, side, 0x0803),
        )
        .unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_labels(n)).unwrap();
        let cfg = DataConfig {
            source: DataSource::Mnist,
            ..Default::default()
        };
        let e = cfg.load(Some(&dir), Split::Train).unwrap_err();
        assert!(matches!(e, Error::Data { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains(&dir.display().to_string())
                && e.contains(what)
                && e.contains("at least one"),
            "{e}"
        );
    }
}
