//! fewstep's build script. It only acts with `--features tch`, where it makes the binary build
//! against the libtorch of an installed PyTorch from 2.9 up (docs/stack.md, "libtorch"):
//!
//! - torch-sys (through `DEP_TCH_LIBTORCH_LIB`) says which `torch/lib` it compiled against; the
//!   version is read beside it (`torch/version.py` of a wheel, `build-version` of a libtorch
//!   zip) and must be ≥ 2.9 — torch-sys's own check accepts 2.9.0 only, so `.cargo/config.toml`
//!   bypasses it and this script checks the range instead;
//! - `-Wl,--allow-shlib-undefined`: libtorch_cuda.so needs CUDA libraries (libcudart, libcublas,
//!   …) that a build machine may lack; they are resolved on the GPU host at load time;
//! - `-Wl,-rpath,<torch/lib>`: the binary finds that libtorch without `LD_LIBRARY_PATH` on the
//!   machine it was built on (elsewhere `LD_LIBRARY_PATH` names the host's `torch/lib`);
//! - `FEWSTEP_LIBTORCH_VERSION` / `FEWSTEP_LIBTORCH_LIB` are compiled in, for `fewstep --version`
//!   and the error when a GPU is asked for and libtorch cannot see one.

use std::path::Path;

/// The oldest libtorch fewstep's `tch` build is checked against (torch-sys 0.22's own target).
const MIN_LIBTORCH: (u32, u32) = (2, 9);

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        fail("torch-sys did not report its libtorch folder (DEP_TCH_LIBTORCH_LIB)");
    };
    let lib = Path::new(&lib);
    let version = libtorch_version(lib);
    match version.as_deref().and_then(major_minor) {
        Some(v) if v >= MIN_LIBTORCH => {}
        Some(_) => fail(&format!(
            "libtorch {} at `{}` is older than {}.{}",
            version.unwrap_or_default(),
            lib.display(),
            MIN_LIBTORCH.0,
            MIN_LIBTORCH.1
        )),
        None => println!(
            "cargo:warning=cannot tell the libtorch version at `{}` (no torch/version.py or \
             build-version beside it); fewstep is tested with 2.9 and 2.11",
            lib.display()
        ),
    }
    println!("cargo:rustc-link-arg=-Wl,--allow-shlib-undefined");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!(
        "cargo:rustc-env=FEWSTEP_LIBTORCH_VERSION={}",
        version.as_deref().unwrap_or("unknown")
    );
    println!("cargo:rustc-env=FEWSTEP_LIBTORCH_LIB={}", lib.display());
}

/// `2.11.0+cu130` from `torch/version.py` (a pip wheel: `lib` is `torch/lib`) or
/// `build-version` (a libtorch zip: `lib` is `libtorch/lib`).
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    let py = root.join("version.py");
    println!("cargo:rerun-if-changed={}", py.display());
    if let Ok(text) = std::fs::read_to_string(&py) {
        return text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("__version__")?.trim_start();
            let v = rest.strip_prefix('=')?.trim().trim_matches(['\'', '"']);
            Some(v.to_string())
        });
    }
    std::fs::read_to_string(root.join("build-version"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(['.', '+']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn fail(why: &str) -> ! {
    eprintln!(
        "error: fewstep's `--features tch` needs libtorch ≥ {}.{}: {why}.\nInstall PyTorch ≥ {0}.{1} \
         (`pip install torch==2.11.0`) and build with `scripts/tch.sh --python PYTHON build` \
         (or set LIBTORCH to its `torch` folder); see docs/stack.md",
        MIN_LIBTORCH.0, MIN_LIBTORCH.1
    );
    std::process::exit(1);
}
