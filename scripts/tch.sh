#!/usr/bin/env bash
# Build, test or run fewstep's libtorch backend (`--features tch`) against the libtorch of an
# installed PyTorch ≥ 2.9 — the one recipe of docs/stack.md ("libtorch").
#
#   scripts/tch.sh [--python PY] build [CARGO ARGS…]   # → target/tch-<torch version>/release/fewstep
#   scripts/tch.sh [--python PY] test  [CARGO ARGS…]   # e.g. test --release --workspace
#   scripts/tch.sh [--python PY] env                   # print the variables, for your own commands
#
# PY: a Python whose `import torch` works (default: $FEWSTEP_TORCH_PYTHON, else python3). From it
# this sets LIBTORCH (torch's folder), LIBTORCH_CXX11_ABI (torch's ABI), LD_LIBRARY_PATH (torch/lib,
# for every test binary; the fewstep binary itself also carries an rpath to it),
# FEWSTEP_TEST_DEVICE=tch (the library tests' fixtures then run on libtorch's CPU backend) and
# CARGO_TARGET_DIR=target/tch-<version>, so builds against several torch versions and the default
# build never invalidate each other. build.rs checks the version (≥ 2.9) and adds the link fixes
# (docs/stack.md); `.cargo/config.toml` turns off torch-sys's 2.9.0-only check.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${FEWSTEP_TORCH_PYTHON:-python3}"
if [ "${1:-}" = "--python" ]; then
    [ $# -ge 2 ] || { echo "error: --python needs a path to a Python with torch" >&2; exit 2; }
    PY="$2"
    shift 2
fi
[ $# -ge 1 ] || { sed -n 2,16p "$0" | sed 's/^# \{0,1\}//'; exit 2; }
cmd="$1"
shift

err="$(mktemp)"
trap 'rm -f "$err"' EXIT
info="$("$PY" - 2>"$err" <<'EOF'
import os, torch
print(os.path.dirname(torch.__file__))
print(torch.__version__)
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
EOF
)" || {
    echo "error: \`$PY\` cannot import torch: install PyTorch ≥ 2.9 into it (\`$PY -m pip install torch==2.11.0\`) or name another Python with --python PY" >&2
    echo "  ($(tail -1 "$err"))" >&2
    exit 1
}
TORCH_DIR="$(sed -n 1p <<<"$info")"
TORCH_VERSION="$(sed -n 2p <<<"$info")"
ABI="$(sed -n 3p <<<"$info")"
major_minor="${TORCH_VERSION%%+*}"
IFS=. read -r MAJ MIN _ <<<"$major_minor"
if [ "$MAJ" -lt 2 ] || { [ "$MAJ" -eq 2 ] && [ "$MIN" -lt 9 ]; }; then
    echo "error: torch $TORCH_VERSION at $TORCH_DIR is older than 2.9: fewstep's tch build needs PyTorch ≥ 2.9 (\`$PY -m pip install torch==2.11.0\`)" >&2
    exit 1
fi

export LIBTORCH="$TORCH_DIR" LIBTORCH_CXX11_ABI="$ABI"
export LD_LIBRARY_PATH="$TORCH_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/tch-${TORCH_VERSION%%+*}}"
unset LIBTORCH_USE_PYTORCH
# The library tests run on libtorch's CPU backend (teacher::backend::test_device).
export FEWSTEP_TEST_DEVICE="${FEWSTEP_TEST_DEVICE:-tch}"

case "$cmd" in
    env)
        echo "export LIBTORCH=$LIBTORCH LIBTORCH_CXX11_ABI=$ABI"
        echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
        echo "export CARGO_TARGET_DIR=$CARGO_TARGET_DIR FEWSTEP_TEST_DEVICE=$FEWSTEP_TEST_DEVICE"
        ;;
    build | test | clippy | check | run | bench)
        echo "fewstep tch: torch $TORCH_VERSION ($TORCH_DIR), target $CARGO_TARGET_DIR" >&2
        cargo "$cmd" --features tch "$@"
        if [ "$cmd" = build ]; then
            for p in "$CARGO_TARGET_DIR"/{release,debug}/fewstep; do
                if [ -x "$p" ]; then echo "fewstep tch: binary $p" >&2; fi
            done
        fi
        ;;
    *)
        echo "error: unknown command \`$cmd\`: use build, test, clippy, check, run, bench or env" >&2
        exit 2
        ;;
esac
