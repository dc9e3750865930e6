"""Collect what reports/gpu/tch-cuda.sh wrote under OUT into OUT/results.json.

usage: python3 reports/gpu/tch_results.py OUT [full|rehearse]

Every figure is read from the JSON a fewstep or bench/pytorch_unet.py command printed; a step
that failed leaves its key null and its line from status.txt under "failures". The FID interval
is over the three sampling seeds (mean ± t₀.₉₇₅,₂ · s / √3, t = 4.303), n per seed as run; bf16
"within the fp32 interval" means the bf16 mean lies inside it.
"""
import json
import math
import os
import statistics
import sys

T_975_DF2 = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom


def load(out, name):
    try:
        with open(os.path.join(out, name)) as f:
            text = f.read().strip()
        return json.loads(text.splitlines()[-1]) if text else None
    except (OSError, ValueError, IndexError):
        return None


def ratio(a, b):
    return a / b if a is not None and b else None


def get(d, key):
    return None if d is None else d.get(key)


def unet(out, batches):
    rows, ratios = {}, {}
    for b in batches:
        f, f16 = load(out, f"unet-fewstep-b{b}.json"), load(out, f"unet-fewstep-bf16-b{b}.json")
        pt, ptc = load(out, f"unet-pytorch-b{b}.json"), load(out, f"unet-pytorch-compile-b{b}.json")
        rows[f"b{b}"] = {
            "fewstep_fp32": f, "fewstep_bf16": f16, "pytorch_eager": pt, "pytorch_compile": ptc,
        }
        for what in ("train", "sample"):
            k = f"{what}_img_per_s"
            ratios[f"{what}_ratio_vs_pytorch_b{b}"] = ratio(get(f, k), get(pt, k))
            ratios[f"{what}_ratio_vs_torch_compile_b{b}"] = ratio(get(f, k), get(ptc, k))
            ratios[f"{what}_bf16_over_fp32_b{b}"] = ratio(get(f16, k), get(f, k))
    return rows, ratios


def fid_interval(out, precision):
    vals = [get(load(out, f"fid-{precision}-{s}.json"), "fid") for s in range(3)]
    vals = [v for v in vals if v is not None]
    if len(vals) < 3:
        return {"seeds": len(vals), "values": vals, "mean": None, "ci95": None}
    m, sd = statistics.mean(vals), statistics.stdev(vals)
    h = T_975_DF2 * sd / math.sqrt(3)
    return {"seeds": 3, "values": vals, "mean": m, "ci95": [m - h, m + h]}


def main():
    out = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "full"
    batches = [8, 16] if mode == "rehearse" else [64, 512]
    rows, ratios = unet(out, batches)
    samp = {p: load(out, f"sampling-{p}.json") for p in ("fp32", "bf16")}
    fid = {p: fid_interval(out, p) for p in ("fp32", "bf16")}
    f32, f16 = fid["fp32"], fid["bf16"]
    within = None
    if f32["ci95"] and f16["mean"] is not None:
        within = f32["ci95"][0] <= f16["mean"] <= f32["ci95"][1]
    first = load(out, "fid-fp32-0.json") or {}
    with open(os.path.join(out, "status.txt")) as f:
        status = [l.strip() for l in f if l.strip()]
    tch = dict(ratios)
    tch.update({
        "speedup_student4_vs_teacher50": get(samp["fp32"], "speedup"),
        "speedup_student4_vs_teacher50_bf16": get(samp["bf16"], "speedup"),
        "bf16_fid_within_fp32_ci95": within,
    })
    res = {
        "mode": mode,
        "note": None if mode == "full" else "rehearsal on the CPU (--device tch): flow only, no GPU figures",
        "host": open(os.path.join(out, "host.txt")).read().strip(),
        "gpu": open(os.path.join(out, "gpu.txt")).read().strip() if os.path.exists(os.path.join(out, "gpu.txt")) else None,
        "fewstep": open(os.path.join(out, "fewstep-version.txt")).read().strip(),
        "tch_cuda": tch,
        "unet": rows,
        "teacher_train": {"fp32": load(out, "teacher-train.json"), "bf16": load(out, "teacher-train-bf16.json")},
        "sampling": samp,
        "fid_teacher50": {
            "n_per_seed": first.get("n_samples"), "reference": first.get("reference"),
            "features": first.get("features"), "interval": "3 sampling seeds, t interval",
            "fp32": f32, "bf16": f16,
        },
        "failures": [l for l in status if l.startswith("FAILED")],
        "status": status,
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=2)
    for k, v in tch.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
