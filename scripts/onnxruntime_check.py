"""Second-runtime check of an exported fewstep ONNX file with onnxruntime (and onnx.checker).

`fewstep export check model.onnx --model RUN --save-io DIR` writes the inputs it used and burn's
outputs as .npy files named after the graph's inputs and outputs; this script feeds the same
inputs to onnxruntime and prints the max abs difference from burn's outputs per output.

    python3 -m venv .venv-ort && .venv-ort/bin/pip install onnxruntime onnx numpy
    .venv-ort/bin/python scripts/onnxruntime_check.py model.onnx DIR [--tolerance 1e-4]

Exits 1 when the checker rejects the file or a difference exceeds the tolerance.
"""
import argparse
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("io_dir")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    model = onnx.load(a.onnx)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    io = pathlib.Path(a.io_dir)
    feeds = {i.name: np.load(io / f"{i.name}.npy") for i in sess.get_inputs()}
    outs = sess.run(None, feeds)
    worst = 0.0
    for meta, got in zip(sess.get_outputs(), outs):
        want = np.load(io / f"{meta.name}.npy")
        err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        worst = max(worst, err)
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        print(f"{meta.name}: max |onnxruntime − burn| = {err:.3e}  (inputs {shapes})")
    print(f"onnx {onnx.__version__} checker: ok; onnxruntime {ort.__version__}; opset "
          f"{[o.version for o in model.opset_import]}")
    return 0 if worst <= a.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
