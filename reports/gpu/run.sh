#!/usr/bin/env bash
# GPU timings for fewstep (wgpu/Vulkan backend) and its PyTorch twin (CUDA) on one machine.
# Carried: .gl (Vulkan loader debs), .gpu (stripped wgpu binary + checkpoints). Writes to $OUT.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/fewstep.xz'), open('/tmp/fewstep', 'wb'))"
chmod +x /tmp/fewstep
B=/tmp/fewstep
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { log "$*"; local t0=$SECONDS; "$@" >> "$OUT/log.txt" 2>&1; echo "-- rc $? after $((SECONDS - t0)) s" >> "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
# 1. One U-Net step (train: fwd+bwd+Adam; sample: a CFG step), same network, batch 64 and 512.
for b in 64 512; do
  run timeout 150 $B --quiet --device wgpu bench unet --config configs/mnist.toml --batch $b --reps 5
  run timeout 100 python3 bench/pytorch_unet.py --device cuda --batch $b --reps 5
done
# 2. Sampling the real MNIST models: teacher 50 guided steps vs 4-step progressive student.
run timeout 200 $B --quiet --device wgpu bench sampling --teacher .gpu/mnist-teacher --student .gpu/mnist-prog4 --n 1000 --batch 250 --json
# 3. Video: the space-time U-Net step, and teacher-50 vs student-4 on 200 clips.
run timeout 100 $B --quiet --device wgpu bench unet --config configs/moving-digits.toml --batch 16 --reps 5
if [ -d .gpu/md-teacher ]; then
  run timeout 150 $B --quiet --device wgpu bench sampling --teacher .gpu/md-teacher --student .gpu/md-prog4 --n 200 --batch 100 --json
fi
cp "$OUT/log.txt" "$OUT/log-final.txt"
