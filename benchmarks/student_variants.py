"""Which compact student fits the AVX2 cart? Latency of OpenVINO INT8 for candidate variants of
the paper's network (stem width × input scale), measured interleaved in one run, natively and
with oneDNN capped to AVX2 (``ONEDNN_MAX_CPU_ISA``), each engine in a fresh process.

    python benchmarks/student_variants.py [--repeats 200] [--json OUT.json]

Weights are random (initialized as for training): INT8 latency does not depend on their values.
The figures chose the demo's compact bundle (docs/design.md §9b). Inference alone, batch 1,
2 threads; the bedside path adds decoding and preprocessing (``gout-edge bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

VARIANTS = [  # (stem width, height, width)
    (64, 320, 700),  # the paper's model: the teacher
    (64, 160, 350),
    (32, 320, 700),
    (32, 224, 490),
    (32, 160, 350),
    (48, 160, 350),
    (24, 224, 490),
]

_TIMER = r"""
import sys, time, json, numpy as np, openvino as ov
xml, h, w, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
core = ov.Core()
c = core.compile_model(core.read_model(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2})
r = c.create_infer_request()
x = np.random.default_rng(0).standard_normal((1, 1, h, w)).astype(np.float32)
for _ in range(10): r.infer({0: x})
t = []
for _ in range(n):
    t0 = time.perf_counter(); r.infer({0: x}); t.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99))}))
"""


def build(work: Path) -> list[dict]:
    import torch

    from gout_edge.export.model import GoutResNet, count_macs
    from gout_edge.export.onnx import export_onnx
    from gout_edge.export.quantize import quantize_openvino
    from gout_edge.manifest import InputSpec, OutputSpec

    out = []
    for width, h, w in VARIANTS:
        torch.manual_seed(0)
        model = GoutResNet(3, width=width).eval()
        spec = InputSpec(height=h, width=w)
        fp32 = work / f"w{width}_{h}x{w}.onnx"
        export_onnx(model, fp32, spec, OutputSpec(features="features"))
        calib = np.random.default_rng(1).standard_normal((16, 1, h, w)).astype(np.float32)
        xml = quantize_openvino(fp32, fp32.with_suffix(".xml"), calib)
        out.append({"width": width, "input": f"{h}x{w}", "xml": str(xml),
                    "gmac": count_macs(model, h, w) / 1e9, "parameters": sum(p.numel() for p in model.parameters())})
    return out


def time_one(xml: str, h: int, w: int, repeats: int, isa: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    p = subprocess.run([sys.executable, "-c", _TIMER, xml, str(h), str(w), str(repeats)], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        variants = build(Path(tmp))
        for v in variants:
            v["native"], v["avx2"] = [], []
        for _ in range(args.rounds):  # interleaved: every variant once per round, native then capped
            for v in variants:
                h, w = map(int, v["input"].split("x"))
                v["native"].append(time_one(v["xml"], h, w, args.repeats, None))
                v["avx2"].append(time_one(v["xml"], h, w, args.repeats, "AVX2"))
    teacher = variants[0]
    med = lambda runs, k: float(np.median([r[k] for r in runs]))  # noqa: E731
    print(f"{'width':>5} {'input':>8} {'GMAC':>6} {'params':>9} {'native p50':>10} {'AVX2 p50':>9} {'AVX2 p99':>9} {'speed-up AVX2':>13}")
    for v in variants:
        v.pop("xml")
        v["native_p50"], v["avx2_p50"], v["avx2_p99"] = med(v["native"], "p50"), med(v["avx2"], "p50"), med(v["avx2"], "p99")
        print(f"{v['width']:>5} {v['input']:>8} {v['gmac']:>6.2f} {v['parameters']:>9,} {v['native_p50']:>10.2f} "
              f"{v['avx2_p50']:>9.2f} {v['avx2_p99']:>9.2f} {med(teacher['avx2'], 'p50') / v['avx2_p50']:>12.1f}×")
    if args.json:
        args.json.write_text(json.dumps(variants, indent=1))


if __name__ == "__main__":
    main()
