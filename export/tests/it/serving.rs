//! Serving artefacts: Triton model repositories (always), TensorRT engines (when the
//! TensorRT-RTX libraries are found and the `tensorrt` feature is on), and the no-TensorRT error.

use std::path::{Path, PathBuf};

use export::engine::{
    BUILDER_COMPILED_IN, BatchProfile, EngineOptions, EngineSidecar, Flavor, InputProfile,
    build_engine, find_libraries, input_profiles, missing_library_message, sidecar_path,
};
use export::onnx::{declared_inputs, read_model};
use export::source::Source;
use export::triton::{TritonOptions, triton_type, write_repository};
use export::triton_accel::{Accelerator, TrtAccelerator, TrtPrecision};
use export::{BatchMode, ExportOptions, export_model, write_model};
use teacher::edm::precond::Precond;
use teacher::recipe::ModelKind;

use crate::fixtures::{device, save_model, student_spec, temp_dir};

/// A tiny guided student (1×8×8 digits, inputs x, sigma, class, w) exported to `dir/name`.
fn student_onnx(dir: &Path, name: &str, batch: BatchMode) -> PathBuf {
    let run = save_model(
        &dir.join("run"),
        ModelKind::Guided,
        student_spec(Precond::Edm),
        11,
    );
    let source = Source::load(&run, None, &device()).unwrap();
    let opts = ExportOptions {
        batch,
        ..ExportOptions::default()
    };
    let model = export_model(&source, &opts).expect("the tiny student exports");
    let path = dir.join(name);
    write_model(&model, &path).unwrap();
    path
}

fn new_dir(name: &str) -> PathBuf {
    let d = temp_dir(name);
    std::fs::create_dir_all(d.join("run")).unwrap();
    d
}

const DYNAMIC_IO: &str = r#"input [
  {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 1, 8, 8 ]
  },
  {
    name: "sigma"
    data_type: TYPE_FP32
    dims: [ 1 ]
    reshape: { shape: [ ] }
  },
  {
    name: "class"
    data_type: TYPE_INT64
    dims: [ 1 ]
    reshape: { shape: [ ] }
  },
  {
    name: "w"
    data_type: TYPE_FP32
    dims: [ 1 ]
    reshape: { shape: [ ] }
  }
]
output [
  {
    name: "denoised"
    data_type: TYPE_FP32
    dims: [ 1, 8, 8 ]
  }
]
dynamic_batching { max_queue_delay_microseconds: 100 }
"#;

/// ONNX Runtime's TensorRT accelerator with the defaults, for model `guided` at max batch 32:
/// FP32, 1 GiB = 1073741824 bytes of workspace, the engine cached under
/// /tmp/fewstep_trt_cache/guided, one profile over the batch axis 1 : min(8, 32) : 32.
const TRT_BLOCK: &str = r#"instance_group [ { count: 1, kind: KIND_GPU } ]
optimization { execution_accelerators {
  gpu_execution_accelerator : [ {
    name : "tensorrt"
    parameters { key: "precision_mode" value: "FP32" }
    parameters { key: "max_workspace_size_bytes" value: "1073741824" }
    parameters { key: "trt_engine_cache_enable" value: "1" }
    parameters { key: "trt_engine_cache_path" value: "/tmp/fewstep_trt_cache/guided" }
    parameters { key: "trt_profile_min_shapes" value: "x:1x1x8x8,sigma:1,class:1,w:1" }
    parameters { key: "trt_profile_opt_shapes" value: "x:8x1x8x8,sigma:8,class:8,w:8" }
    parameters { key: "trt_profile_max_shapes" value: "x:32x1x8x8,sigma:32,class:32,w:32" }
  } ]
} }
"#;

fn repo_opts(
    name: Option<&str>,
    max_batch: Option<usize>,
    engine: Option<PathBuf>,
) -> TritonOptions {
    TritonOptions {
        name: name.map(str::to_string),
        max_batch,
        engine,
        ..TritonOptions::default()
    }
}

#[test]
fn triton_repository_for_a_dynamic_onnx_student() {
    let dir = new_dir("triton-dyn");
    let onnx = student_onnx(&dir, "guided.onnx", BatchMode::Dynamic);
    let repo = dir.join("model_repository");
    let r = write_repository(&onnx, &repo, &repo_opts(None, Some(32), None)).unwrap();
    assert_eq!(r.model_dir, repo.join("guided"));
    assert_eq!(r.model_file, repo.join("guided/1/model.onnx"));
    assert_eq!(
        std::fs::read(&onnx).unwrap(),
        std::fs::read(&r.model_file).unwrap()
    );
    let text = std::fs::read_to_string(repo.join("guided/config.pbtxt")).unwrap();
    assert_eq!(text, r.config_text);
    let expected = format!(
        "name: \"guided\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 32\n{DYNAMIC_IO}{TRT_BLOCK}"
    );
    assert_eq!(text, expected, "config.pbtxt:\n{text}");

    // FP16, another workspace and cache; CUDA only; CPU.
    let fp16 = TritonOptions {
        accelerator: Accelerator::TensorRt(TrtAccelerator {
            precision: TrtPrecision::Fp16,
            workspace_mib: 2048,
            cache_dir: Some("/cache/g".into()),
        }),
        ..repo_opts(Some("g16"), Some(32), None)
    };
    let t = write_repository(&onnx, &repo, &fp16).unwrap().config_text;
    for want in [
        "key: \"precision_mode\" value: \"FP16\"",
        "key: \"max_workspace_size_bytes\" value: \"2147483648\"",
        "key: \"trt_engine_cache_path\" value: \"/cache/g\"",
    ] {
        assert!(t.contains(want), "missing `{want}` in:\n{t}");
    }
    for (accel, kind) in [
        (Accelerator::Cuda, "KIND_GPU"),
        (Accelerator::Cpu, "KIND_CPU"),
    ] {
        let o = TritonOptions {
            accelerator: accel,
            ..repo_opts(Some("plain"), Some(32), None)
        };
        let t = write_repository(&onnx, &repo, &o).unwrap().config_text;
        assert!(
            t.ends_with(&format!(
                "{DYNAMIC_IO}instance_group [ {{ count: 1, kind: {kind} }} ]\n"
            )),
            "{t}"
        );
    }
    // A cache path that would break config.pbtxt's quotes is refused.
    let bad = TritonOptions {
        accelerator: Accelerator::TensorRt(TrtAccelerator {
            cache_dir: Some("/tmp/a\"b".into()),
            ..TrtAccelerator::default()
        }),
        ..repo_opts(Some("bad"), None, None)
    };
    let e = write_repository(&onnx, &repo, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--trt-cache"), "{e}");
    assert!(!repo.join("bad").exists());

    // A text file given as the engine is refused (before: copied in as `model.plan`).
    let text_plan = dir.join("notes.txt");
    std::fs::write(&text_plan, "not an engine\n".repeat(100)).unwrap();
    let e = write_repository(
        &onnx,
        &repo,
        &repo_opts(Some("text"), None, Some(text_plan)),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("is text") && e.contains("fewstep export engine"),
        "{e}"
    );
    assert!(!repo.join("text").exists());

    // A missing engine is named with the command that builds it.
    let e = write_repository(
        &onnx,
        &repo,
        &repo_opts(None, None, Some(dir.join("missing.plan"))),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("missing.plan") && e.contains("fewstep export engine"),
        "{e}"
    );
}

/// `tensorrt_plan` only ever holds a datacenter engine.
#[test]
fn triton_serves_only_datacenter_engines_under_tensorrt_plan() {
    let dir = new_dir("triton-plan");
    let onnx = student_onnx(&dir, "guided.onnx", BatchMode::Dynamic);
    let repo = dir.join("model_repository");
    // A (binary) engine without a sidecar, e.g. from trtexec: its flavor must be declared.
    let plan = dir.join("fake.plan");
    std::fs::write(&plan, vec![0xffu8; 4096]).unwrap();
    let e = write_repository(
        &onnx,
        &repo,
        &repo_opts(Some("undeclared"), None, Some(plan.clone())),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no fewstep sidecar") && e.contains("--engine-flavor datacenter"),
        "{e}"
    );
    let declared = |flavor| TritonOptions {
        engine_flavor: Some(flavor),
        ..repo_opts(Some("guided trt"), None, Some(plan.clone()))
    };
    let e = write_repository(&onnx, &repo, &declared(Flavor::Rtx))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("TensorRT-RTX engine") && e.contains("libnvinfer"),
        "{e}"
    );
    assert!(!repo.join("guided_trt").exists());
    let r = write_repository(&onnx, &repo, &declared(Flavor::Datacenter)).unwrap();
    assert_eq!(r.model_file, repo.join("guided_trt/1/model.plan"));
    assert!(
        r.config_text
            .starts_with("name: \"guided_trt\"\nplatform: \"tensorrt_plan\"\nmax_batch_size: 64\n")
    );
    assert!(r.config_text.ends_with(&format!(
        "{DYNAMIC_IO}instance_group [ {{ count: 1, kind: KIND_GPU }} ]\n"
    )));

    // With a sidecar (as `export engine` writes it): an RTX one is refused, naming the ONNX route;
    // a datacenter one gives its profile max as the default max batch and must come from this file.
    let b: BatchProfile = "1:4:16".parse().unwrap();
    let mut sc = EngineSidecar {
        flavor: Flavor::Rtx,
        tensorrt_version: "1.7.1".into(),
        library: "libtensorrt_rtx.so.1".into(),
        onnx: onnx.display().to_string(),
        onnx_sha256: export::engine::sha256_file(&onnx).unwrap(),
        batch: b,
        profile: expected_profiles(b),
        network_layers: 1,
        engine_layers: None,
        deserialize: "no GPU".into(),
        engine_bytes: 20,
        timing_cache: None,
    };
    let write_sidecar = |sc: &EngineSidecar| {
        let json = serde_json::to_string(&sc.to_json()).unwrap();
        std::fs::write(sidecar_path(&plan), json).unwrap();
        assert_eq!(&EngineSidecar::read_for(&plan).unwrap(), sc);
    };
    write_sidecar(&sc);
    let plain = repo_opts(Some("sc"), None, Some(plan.clone()));
    let e = write_repository(&onnx, &repo, &plain)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("TensorRT-RTX engine")
            && e.contains("tensorrt_plan")
            && e.contains(&format!("fewstep export triton --onnx {}", onnx.display())),
        "{e}"
    );
    // Declaring it datacenter does not override the sidecar.
    let e = write_repository(&onnx, &repo, &declared(Flavor::Datacenter))
        .unwrap_err()
        .to_string();
    assert!(e.contains("contradicts its sidecar"), "{e}");
    sc.flavor = Flavor::Datacenter;
    write_sidecar(&sc);
    let r = write_repository(&onnx, &repo, &plain).unwrap();
    assert!(
        r.config_text.contains("max_batch_size: 16\n"),
        "{}",
        r.config_text
    );
    let e = write_repository(
        &onnx,
        &repo,
        &repo_opts(Some("sc"), Some(32), Some(plan.clone())),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("exceeds the engine profile's max batch 16"),
        "{e}"
    );
    sc.onnx_sha256 = "0".repeat(64);
    write_sidecar(&sc);
    let e = write_repository(&onnx, &repo, &plain)
        .unwrap_err()
        .to_string();
    assert!(e.contains("built from another ONNX file"), "{e}");
}

#[test]
fn triton_repository_for_a_fixed_batch_file_has_full_shapes_and_no_batching() {
    let dir = new_dir("triton-fixed");
    let onnx = student_onnx(&dir, "fixed.onnx", BatchMode::Fixed(4));
    let repo = dir.join("repo");
    let opts = repo_opts(Some("digits"), None, None);
    let r = write_repository(&onnx, &repo, &opts).unwrap();
    let t = &r.config_text;
    assert!(t.contains("max_batch_size: 0\n"), "{t}");
    assert!(
        t.contains("name: \"x\"\n    data_type: TYPE_FP32\n    dims: [ 4, 1, 8, 8 ]"),
        "{t}"
    );
    assert!(
        t.contains("name: \"sigma\"\n    data_type: TYPE_FP32\n    dims: [ 4 ]\n  }"),
        "{t}"
    );
    assert!(
        !t.contains("reshape") && !t.contains("dynamic_batching"),
        "{t}"
    );
    // A fixed batch needs no TensorRT profile: the provider builds for the one shape.
    assert!(
        t.contains("name : \"tensorrt\"") && !t.contains("trt_profile"),
        "{t}"
    );
    let e = write_repository(
        &onnx,
        &repo,
        &TritonOptions {
            max_batch: Some(8),
            ..opts
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("fixed batch") && e.contains("--batch dynamic"),
        "{e}"
    );
}

#[test]
fn triton_types_cover_fp16_and_int64() {
    assert_eq!(triton_type(1), Some("TYPE_FP32"));
    assert_eq!(triton_type(10), Some("TYPE_FP16"));
    assert_eq!(triton_type(7), Some("TYPE_INT64"));
    assert_eq!(triton_type(8), None); // STRING
}

#[test]
fn batch_profiles_parse_and_follow_the_file() {
    let p: BatchProfile = "1:8:64".parse().unwrap();
    assert_eq!((p.min, p.opt, p.max), (1, 8, 64));
    let n: BatchProfile = "4".parse().unwrap();
    assert_eq!((n.min, n.opt, n.max), (4, 4, 4));
    for bad in ["8:1:64", "0:1:2", "1:2", "a:b:c"] {
        assert!(bad.parse::<BatchProfile>().is_err(), "{bad}");
    }

    let dir = new_dir("profile-fixed");
    let onnx = student_onnx(&dir, "fixed.onnx", BatchMode::Fixed(4));
    let inputs = declared_inputs(&read_model(&onnx).unwrap());
    let e = input_profiles(&inputs, p, &onnx).unwrap_err().to_string();
    assert!(e.contains("fixed batch of 4") && e.contains("4:4:4"), "{e}");
    assert!(input_profiles(&inputs, n, &onnx).is_ok());
}

fn expected_profiles(b: BatchProfile) -> Vec<InputProfile> {
    let one = |n: usize| vec![n as i64];
    let img = |n: usize| vec![n as i64, 1, 8, 8];
    let mut v = vec![InputProfile {
        name: "x".into(),
        min: img(b.min),
        opt: img(b.opt),
        max: img(b.max),
    }];
    for name in ["sigma", "class", "w"] {
        v.push(InputProfile {
            name: name.into(),
            min: one(b.min),
            opt: one(b.opt),
            max: one(b.max),
        });
    }
    v
}

#[test]
fn no_tensorrt_error_names_library_variable_package_and_serving_commands() {
    let dir = new_dir("no-trt");
    let onnx = student_onnx(&dir, "guided.onnx", BatchMode::Dynamic);
    let b: BatchProfile = "1:8:64".parse().unwrap();
    let profiles = input_profiles(&declared_inputs(&read_model(&onnx).unwrap()), b, &onnx).unwrap();
    assert_eq!(profiles, expected_profiles(b));
    let out = dir.join("guided.plan");
    let searched = vec![PathBuf::from("/nowhere")];

    let m = missing_library_message(Flavor::Rtx, &searched, &onnx, &out, &profiles, None);
    for want in [
        "libtensorrt_rtx.so.1",
        "libtensorrt_onnxparser_rtx.so.1",
        "FEWSTEP_TENSORRT_LIB_DIR",
        "/nowhere",
        "tensorrt-rtx-cu13-libs",
        "--minShapes=x:1x1x8x8,sigma:1,class:1,w:1",
        "--optShapes=x:8x1x8x8,sigma:8,class:8,w:8",
        "--maxShapes=x:64x1x8x8,sigma:64,class:64,w:64",
        "--trt-min-shapes x:[1,1,8,8] sigma:[1] class:[1] w:[1]",
    ] {
        assert!(m.contains(want), "missing `{want}` in:\n{m}");
    }
    assert!(
        m.contains(&format!("tensorrt_rtx --onnx={}", onnx.display())),
        "{m}"
    );

    let tc = dir.join("timing.cache");
    let m = missing_library_message(
        Flavor::Datacenter,
        &searched,
        &onnx,
        &out,
        &profiles,
        Some(&tc),
    );
    assert!(
        m.contains("libnvinfer.so.11") && m.contains("libnvonnxparser.so.11"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "trtexec --onnx={} --saveEngine={}",
            onnx.display(),
            out.display()
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!("--timingCacheFile={}", tc.display())),
        "{m}"
    );
    assert!(
        m.contains(&format!("--save-timing-cache {}", tc.display())),
        "{m}"
    );

    // The real lookup: datacenter TensorRT 11 is not installed here (nor in CI).
    if find_libraries(Flavor::Datacenter).is_err() {
        let opts = EngineOptions {
            batch: b,
            flavor: Flavor::Datacenter,
            timing_cache: None,
        };
        let e = build_engine(&onnx, &out, &opts).unwrap_err().to_string();
        assert!(
            e.contains("libnvinfer.so.11") && e.contains("trtexec --onnx="),
            "{e}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn tensorrt_rtx_engine_from_the_exported_student() {
    let libs = match find_libraries(Flavor::Rtx) {
        Ok(l) => l,
        Err(searched) => {
            eprintln!(
                "SKIP tensorrt_rtx_engine_from_the_exported_student: libtensorrt_rtx.so.1 not in \
                 {searched:?}; install with `{}` or set FEWSTEP_TENSORRT_LIB_DIR",
                export::engine::RTX_PIP_INSTALL
            );
            return;
        }
    };
    let dir = new_dir("engine");
    let onnx = student_onnx(&dir, "guided.onnx", BatchMode::Dynamic);
    let out = dir.join("guided.plan");
    let b: BatchProfile = "1:2:4".parse().unwrap();
    let opts = EngineOptions {
        batch: b,
        flavor: Flavor::Rtx,
        timing_cache: None,
    };
    let r = build_engine(&onnx, &out, &opts);
    if !BUILDER_COMPILED_IN {
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("--features tensorrt") && e.contains("tensorrt_rtx --onnx="),
            "{e}"
        );
        eprintln!(
            "SKIP engine build: found {} but built without the `tensorrt` feature",
            libs.builder.display()
        );
        return;
    }
    let sc = r.expect("TensorRT-RTX builds the tiny student");
    let plan = std::fs::read(&out).unwrap();
    assert!(!plan.is_empty());
    assert_eq!(sc.engine_bytes, plan.len() as u64);
    assert_eq!(sc.flavor, Flavor::Rtx);
    assert!(
        sc.tensorrt_version.starts_with("1."),
        "{}",
        sc.tensorrt_version
    );
    assert_eq!(sc.onnx_sha256, export::engine::sha256_file(&onnx).unwrap());
    // The builder reports back the profile it was given, per input, with the static dims.
    assert_eq!(sc.profile, expected_profiles(b));
    // Parsed from this graph: at least one TensorRT layer per ONNX node.
    let nodes = read_model(&onnx).unwrap().graph.unwrap().node.len() as i64;
    assert!(
        sc.network_layers >= nodes,
        "{} layers < {nodes} nodes",
        sc.network_layers
    );
    // Deserializing needs a CUDA driver; on a machine without one it fails and says so.
    match sc.engine_layers {
        Some(n) => assert!(n > 0 && sc.deserialize == "ok"),
        None => {
            assert!(
                sc.deserialize.contains("deserializeCudaEngine"),
                "{}",
                sc.deserialize
            );
            eprintln!("engine not deserialized here: {}", sc.deserialize);
        }
    }
    let back = EngineSidecar::read_for(&out).unwrap();
    assert_eq!(back, sc);
    assert!(sidecar_path(&out).ends_with("guided.plan.json"));

    assert!(sc.summary(&onnx, &out).contains("not on datacenter GPUs"));

    // The RTX engine never goes under tensorrt_plan.
    let e = write_repository(&onnx, &dir.join("repo"), &repo_opts(None, None, Some(out)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("TensorRT-RTX engine"), "{e}");
    assert!(!dir.join("repo").exists());
}
