#!/usr/bin/env bash
# fewstep on libtorch CUDA (`--device tch-cuda`) against PyTorch on the same GPU, as one script.
#
#   bash reports/gpu/tch-cuda.sh            # the GPU run: ≈ 7 minutes on one H200
#   bash reports/gpu/tch-cuda.sh --dry      # no GPU needed: the binary's libraries, build, configs, data
#   bash reports/gpu/tch-cuda.sh --rehearse # the whole flow on the CPU (`--device tch`), tiny sizes
#
# Carried to the GPU host (no Rust, no registries there): .gpu/fewstep — the stripped binary of
# `scripts/tch.sh build --release` (then `strip`) — and .gpu/mnist (the four MNIST IDX .gz files);
# configs/, bench/ and reports/gpu/ come with the working tree. The host's PyTorch provides
# libtorch (its torch/lib goes on LD_LIBRARY_PATH). Everything is written under $OUT (default
# reports/gpu/out); reports/gpu/tch_results.py turns it into $OUT/results.json. Every step has a
# timeout; whatever stops one (a missing library, a driver error) is one line in $OUT/status.txt
# and the next steps still run where they can.
set -u
MODE=full
case "${1:-}" in
    --dry) MODE=dry ;;
    --rehearse) MODE=rehearse ;;
    "") ;;
    *) echo "usage: $0 [--dry|--rehearse]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../.."
OUT="${OUT:-reports/gpu/out}"
BIN="${FEWSTEP_BIN:-.gpu/fewstep}"
PY="${PYTHON:-python3}"
MNIST="${MNIST:-.gpu/mnist}"
mkdir -p "$OUT"
: > "$OUT/status.txt"
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
fail() { echo "FAILED $1: $2" | tee -a "$OUT/status.txt"; }
# step NAME SECONDS OUTFILE CMD…: run with a timeout, stdout to OUTFILE, one status line.
step() {
    local name=$1 secs=$2 file=$3 t0=$SECONDS rc why
    shift 3
    log "$name: $*"
    timeout --kill-after=10 "$secs" "$@" > "$OUT/$file" 2> "$OUT/$file.err"
    rc=$?
    cat "$OUT/$file.err" >> "$OUT/log.txt"
    if [ $rc -eq 0 ]; then
        echo "ok $name ($((SECONDS - t0)) s)" >> "$OUT/status.txt"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail "$name" "timed out after ${secs} s"
    else
        # The line that says why: fewstep's `error:`, a panic's message, else the last line.
        why="$(grep -m1 -E '^error|^Error|Err\(|Error:' "$OUT/$file.err" | cut -c1-300)"
        [ -n "$why" ] || why="$(grep -v '^\s*$' "$OUT/$file.err" | tail -1 | cut -c1-300)"
        fail "$name" "exit $rc: $why"
    fi
    return $rc
}

# --- 0. Preflight: torch, the binary's libraries, its build, configs, data (all modes) ---------
TORCH="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)" || {
    fail preflight "\`$PY\` cannot import torch: the host's PyTorch provides libtorch (set PYTHON=…)"
    exit 1
}
export LD_LIBRARY_PATH="$TORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee "$OUT/host.txt"
[ -x "$BIN" ] || { fail preflight "no binary at $BIN: build it with scripts/tch.sh build --release, strip it, carry it as .gpu/fewstep"; exit 1; }
missing="$(ldd "$BIN" 2>&1 | grep 'not found' | awk '{print $1}' | tr '\n' ' ')"
if [ -n "$missing" ]; then
    fail preflight "$BIN needs ${missing}which are not on LD_LIBRARY_PATH=$LD_LIBRARY_PATH (torch's lib folder and the nvidia-* pip packages beside it)"
    exit 1
fi
"$BIN" --version | tee "$OUT/fewstep-version.txt"
grep -q '^tch: libtorch' "$OUT/fewstep-version.txt" || { fail preflight "$BIN was built without --features tch"; exit 1; }
for f in configs/mnist.toml configs/mnist-students.toml configs/digits.toml configs/digits-students.toml bench/pytorch_unet.py reports/gpu/tch_results.py; do
    [ -f "$f" ] || { fail preflight "missing $f (run from the repository root)"; exit 1; }
done
if [ "$MODE" != rehearse ]; then
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        [ -f "$MNIST/$f.gz" ] || [ -f "$MNIST/$f" ] || { fail preflight "no $MNIST/$f(.gz): carry the MNIST IDX files as $MNIST"; exit 1; }
    done
fi
# libtorch really loads and runs the config's network (on the CPU: seconds).
step smoke-cpu 120 smoke-cpu.json "$BIN" --quiet --device tch bench unet --config configs/mnist.toml --batch 2 --reps 1 --json || exit 1
if [ "$MODE" = dry ]; then
    echo "dry run ok: $(cat "$OUT/fewstep-version.txt" | sed -n 2p); torch $(sed -n 1p "$OUT/host.txt")" | tee -a "$OUT/status.txt"
    exit 0
fi

# --- sizes ------------------------------------------------------------------------------------
if [ "$MODE" = rehearse ]; then
    DEV=tch; CFG=configs/digits.toml; STU=configs/digits-students.toml; DATA=(); BATCHES="8 16"; REPS=1; TRAIN_S=10; N=64; SB=32
    FEAT=(--dataset digits --steps 30); REF=digits-test; FID_N=64; BUDGET=1800
else
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt" \
        || fail nvidia-smi "no driver answers"
    DEV=tch-cuda; CFG=configs/mnist.toml; STU=configs/mnist-students.toml; DATA=(--data "$MNIST"); BATCHES="64 512"; REPS=5
    TRAIN_S=150; N=10000; SB=500; FEAT=(--dataset mnist --data "$MNIST" --steps 3000)
    REF=mnist-test; FID_N=2000; BUDGET=450
fi
T=("$BIN" --quiet --device "$DEV")

# --- 1. One U-Net step: fewstep fp32 / bf16 vs PyTorch eager / torch.compile -------------------
for b in $BATCHES; do
    step "unet-fewstep-b$b" 90 "unet-fewstep-b$b.json" "${T[@]}" bench unet --config configs/mnist.toml --batch "$b" --reps "$REPS" --json
    step "unet-fewstep-bf16-b$b" 90 "unet-fewstep-bf16-b$b.json" "${T[@]}" --dtype bf16 bench unet --config configs/mnist.toml --batch "$b" --reps "$REPS" --json
    pydev=cuda; [ "$MODE" = rehearse ] && pydev=cpu
    step "unet-pytorch-b$b" 60 "unet-pytorch-b$b.json" "$PY" bench/pytorch_unet.py --device $pydev --batch "$b" --reps "$REPS" --json
    [ "$MODE" = rehearse ] && continue # torch.compile on CPU needs a compiler toolchain; GPU only
    step "unet-pytorch-compile-b$b" 120 "unet-pytorch-compile-b$b.json" "$PY" bench/pytorch_unet.py --device cuda --batch "$b" --reps "$REPS" --json --compile
done

# --- 2. The teacher, trained on the GPU for TRAIN_S seconds of steps --------------------------
steps=$("$PY" - "$OUT/unet-fewstep-b${BATCHES%% *}.json" "$TRAIN_S" "$CFG" <<'EOF'
import json, sys, tomllib
try:
    ips = json.load(open(sys.argv[1]))["train_img_per_s"]
except Exception:
    ips = 500.0  # the benchmark failed: a guess, bounded by the timeout below
cfg = tomllib.load(open(sys.argv[3], "rb"))["train"]
print(max(20, min(cfg["steps"], int(float(sys.argv[2]) * ips / cfg["batch_size"]))))
EOF
)
step teacher-train $((TRAIN_S * 2 + 60)) teacher-train.json "${T[@]}" teacher train --config "$CFG" "${DATA[@]}" --out "$OUT/teacher" --steps "$steps" --json
# bf16 training throughput over the same steps' first stretch (its own run, fp32 stays the headline).
step teacher-train-bf16 $((TRAIN_S / 3 + 60)) teacher-train-bf16.json "${T[@]}" --dtype bf16 teacher train --config "$CFG" "${DATA[@]}" --out "$OUT/teacher-bf16" --steps $((steps / 6 + 10)) --json

# --- 3. Sampling speed: a guided student at 4 steps vs the teacher at 50 CFG steps -------------
# The student's few minutes of distillation are for timing only (its quality is not claimed).
step student-guided 120 student-guided.txt "${T[@]}" student guided --teacher "$OUT/teacher" --config "$STU" "${DATA[@]}" --out "$OUT/guided" --steps $((steps / 10 + 10))
for p in fp32 bf16; do
    step "sampling-$p" 150 "sampling-$p.json" "${T[@]}" --dtype $p bench sampling --teacher "$OUT/teacher" --student "$OUT/guided" --teacher-steps 50 --student-steps 4 --n "$N" --batch "$SB" --json
done

# --- 4. Verdict figures that fit: FID of the GPU teacher-50, fp32 vs bf16, three seeds ---------
step features 120 features.txt "${T[@]}" eval train-features "${FEAT[@]}" --out "$OUT/features"
for p in fp32 bf16; do
    for s in 0 1 2; do
        [ $SECONDS -gt "$BUDGET" ] && { fail "fid-$p-$s" "skipped: the ${BUDGET}-second budget is spent"; continue; }
        step "fid-$p-$s" 90 "fid-$p-$s.json" "${T[@]}" --dtype $p eval fid --model "$OUT/teacher" --steps 50 --n "$FID_N" --seed "$s" --reference "$REF" --features "$OUT/features" "${DATA[@]}" --json
    done
done

"$PY" reports/gpu/tch_results.py "$OUT" "$MODE" && echo "wrote $OUT/results.json ($SECONDS s in all)"
