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
            width: 8
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
