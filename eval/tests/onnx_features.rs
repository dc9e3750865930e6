//! The `--features model.onnx` path (Inception-v3 for users who have the weights), exercised with
//! a tiny ONNX feature network built here: y = Flatten(GlobalAveragePool(Conv1×1(x; W, b))).
//!
//! Closed form: a constant grey image of value v ∈ [−1, 1] becomes RGB (v+1)/2 everywhere after
//! preprocessing (bilinear resizing a constant is the constant), so its feature is
//! y_o = b_o + (v+1)/2 · Σ_c W_oc.

use std::path::PathBuf;

use burn::tensor::Device;
use eval::fid::FeatureSpace;
use eval::metrics::{Reference, score};
use eval::onnx_features::{CLIP_SIDE, INPUT_SIDE, ONNX_BATCH, preprocess};
use prost::Message;
use teacher::unet::ImageShape;
use tract_onnx::pb;

const W: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.0, 2.0, 0.0],
    [0.5, 0.5, 0.5],
    [-1.0, 1.0, 3.0],
];
const B: [f32; 4] = [0.0, 0.1, -0.2, 0.3];

fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(v) => Value::DimValue(*v),
                                None => Value::DimParam("N".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[i64], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: output.into(),
        ..Default::default()
    }
}

/// The tiny feature network as ONNX bytes (opset 17, dynamic batch axis `N`).
fn tiny_model() -> Vec<u8> {
    tiny_model_for(None)
}

/// The same network over `[N, 3, T, 224, 224]` clips (a 1×1×1 3D convolution) when `frames` is
/// given: the I3D contract.
fn tiny_model_for(frames: Option<i64>) -> Vec<u8> {
    let (input, kernel) = match frames {
        Some(t) => {
            let side = CLIP_SIDE as i64;
            (
                vec![None, Some(3), Some(t), Some(side), Some(side)],
                vec![4, 3, 1, 1, 1],
            )
        }
        None => {
            let side = INPUT_SIDE as i64;
            (
                vec![None, Some(3), Some(side), Some(side)],
                vec![4, 3, 1, 1],
            )
        }
    };
    let graph = pb::GraphProto {
        name: "tiny-features".into(),
        node: vec![
            node("Conv", &["x", "w", "b"], "h"),
            node("GlobalAveragePool", &["h"], "p"),
            node("Flatten", &["p"], "y"),
        ],
        initializer: vec![
            tensor("w", &kernel, W.iter().flatten().copied().collect()),
            tensor("b", &[4], B.to_vec()),
        ],
        input: vec![value_info("x", &input)],
        output: vec![value_info("y", &[None, Some(4)])],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "fewstep-tests".into(),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fewstep-onnx-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn tiny_onnx_feature_model_round_trip() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("tiny.onnx");
    std::fs::write(&path, tiny_model()).unwrap();
    let device = Device::default();
    let space = FeatureSpace::load(&path, &device).unwrap();
    assert!(matches!(space, FeatureSpace::Onnx(_)));
    assert_eq!(space.name(), "ONNX features (tiny.onnx, 4-d)");
    assert_eq!(space.shape(), None);

    // ONNX_BATCH + 3 constant 6×6 grey images: two tract calls, the second padded.
    let shape = ImageShape {
        channels: 1,
        height: 6,
        width: 6,
        frames: 1,
    };
    let n = ONNX_BATCH + 3;
    let values: Vec<f32> = (0..n).map(|i| -1.0 + 2.0 * i as f32 / n as f32).collect();
    let images: Vec<f32> = values.iter().flat_map(|&v| [v; 36]).collect();
    let (feats, dim) = space.features(&images, shape, &device).unwrap();
    assert_eq!((feats.len(), dim), (n * 4, 4));
    for (i, &v) in values.iter().enumerate() {
        for o in 0..4 {
            let want = B[o] + (v + 1.0) / 2.0 * W[o].iter().sum::<f32>();
            let got = feats[i * 4 + o];
            // 1e-3: the pool sums 299² f32 values; a sequential f32 sum may drift up to
            // n·ε ≈ 89401·6e-8 ≈ 5e-3 relative (1.3e-4 observed), far below a wrong feature.
            assert!(
                (got - want).abs() < 1e-3,
                "image {i}, feature {o}: {got} vs {want}"
            );
        }
    }

    // A non-constant image: its features are the channel means of its preprocessed input.
    let ramp: Vec<f32> = (0..36).map(|i| -1.0 + i as f32 / 18.0).collect();
    let (f, _) = space.features(&ramp, shape, &device).unwrap();
    let mut pre = vec![0.0; 3 * INPUT_SIDE * INPUT_SIDE];
    preprocess(&ramp, shape, &mut pre);
    let plane = INPUT_SIDE * INPUT_SIDE;
    let mean = |c: usize| pre[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32;
    for o in 0..4 {
        let want = B[o] + (0..3).map(|c| W[o][c] * mean(c)).sum::<f32>();
        assert!(
            (f[o] - want).abs() < 1e-3,
            "ramp feature {o}: {} vs {want}",
            f[o]
        );
    }

    // FID of a set against itself in this space is 0 (through the cached reference path).
    let intervals = eval::metrics::IntervalConfig::default();
    let reference = Reference::new(&space, &images, shape, &intervals, &device).unwrap();
    let classes = vec![0; n];
    let set = (images.as_slice(), classes.as_slice(), shape);
    let m = score(&space, &reference, set, 3, "self", &device)
        .unwrap()
        .metrics;
    assert!(m.fid.abs() < 1e-6, "FID(x, x) = {}", m.fid);
    assert_eq!(m.class_accuracy, None);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_broken_onnx_file_is_named_in_the_error() {
    let dir = temp_dir("broken");
    let path = dir.join("inception.onnx");
    std::fs::write(&path, b"not a protobuf at all").unwrap();
    let err = FeatureSpace::load(&path, &Device::default())
        .err()
        .expect("garbage must not load")
        .to_string();
    assert!(
        err.contains("inception.onnx") && err.contains("ONNX"),
        "{err}"
    );
    let missing = FeatureSpace::load(&dir.join("absent.onnx"), &Device::default())
        .err()
        .expect("a missing file must not load")
        .to_string();
    assert!(
        missing.contains("absent.onnx") && missing.contains("no such file"),
        "{missing}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn an_i3d_contract_onnx_file_gives_fvd_features_of_clips() {
    // Clips keep [−1, 1] under the I3D contract, and resizing a constant frame is the constant,
    // so a constant grey clip of value v has feature y_o = b_o + v·Σ_c W_oc; a clip whose
    // frames differ averages them (the pool runs over time too): v̄ = mean of its frames.
    let dir = temp_dir("i3d");
    let path = dir.join("i3d.onnx");
    std::fs::write(&path, tiny_model_for(Some(3))).unwrap();
    let device = Device::default();
    let shape = ImageShape {
        channels: 1,
        height: 4,
        width: 4,
        frames: 3,
    };
    let space = FeatureSpace::load_for(&path, Some(shape), &device).unwrap();
    assert_eq!(space.metric(), "FVD");
    let clips: Vec<f32> = [[0.5f32; 3], [-1.0, 0.0, 1.0]]
        .iter()
        .flat_map(|frames| frames.iter().flat_map(|&v| [v; 16]))
        .collect();
    let (feats, dim) = space.features(&clips, shape, &device).unwrap();
    assert_eq!((feats.len(), dim), (8, 4));
    for (i, mean) in [0.5f32, 0.0].into_iter().enumerate() {
        for o in 0..4 {
            let want = B[o] + mean * W[o].iter().sum::<f32>();
            let got = feats[i * 4 + o];
            assert!(
                (got - want).abs() < 1e-3,
                "clip {i}, feature {o}: {got} vs {want}"
            );
        }
    }
    // The same file read as an image network does not take the image contract, and says which.
    let e = FeatureSpace::load(&path, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("InceptionV3"), "{e}");
    // A clip network loaded for 3 frames refuses 2-frame clips, naming the fix.
    let two = ImageShape { frames: 2, ..shape };
    let e = space
        .features(&clips[..64], two, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("3 frame(s)") && e.contains("2"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}
