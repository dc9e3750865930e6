#!/usr/bin/env bash
# The PyTorch twin on CUDA (same network as `fewstep bench unet --config configs/mnist.toml`).
for b in 64 512; do
  echo "== batch $b"; timeout 100 python3 bench/pytorch_unet.py --device cuda --batch $b --reps 5
done 2>&1 | tee "$OUT/torch.txt"
