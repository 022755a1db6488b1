"""Latency of single OpenVINO inferences after idle gaps, by CPU ISA cap and CPU-plugin property.

    python benchmarks/idle_gap_latency.py                       # all variants, native and AVX2
    python benchmarks/idle_gap_latency.py --n 40 --gaps 0,50,200,1000 --variants base,threads1
    python benchmarks/idle_gap_latency.py --isa avx2 --variants base,no-pinning

A live cart runs one inference per frame it takes, with idle gaps between them (a frozen
screen, a slow grabber, the operator between views); the question is whether the first inference
after a gap is slower than one back to back (worker threads that went to sleep, caches gone
cold), and whether an OpenVINO CPU-plugin property cuts that tail without hurting the median.

Each ISA runs in its own subprocess — ``ONEDNN_MAX_CPU_ISA=AVX2`` must be set before OpenVINO
loads, so the AVX2 run stands in for an AVX2 cart on an AVX-512 machine (oneDNN's kernels only:
OpenVINO's own kernels keep their ISA) — compiling the demo bundle's INT8 IR
(``src/gout_edge/demo/bundle``) once per variant with the backend's own configuration
(``backends/openvino.py``: LATENCY hint, f32 inference precision) plus the variant's properties.
The (gap, variant) trials are interleaved in a shuffled order (so drift in a busy machine's load
spreads over all of them); a trial runs its variant once, sleeps the gap and times one inference;
the table gives median, p90, p99 and max per gap and variant in ms. The child also reports which oneDNN kernels ran
(``jit_avx512…`` or ``jit_avx2…``: proof that the cap took). Read the CPU class off the header
(``/proc/cpuinfo``). Timings on a shared machine are noisy: compare variants as ratios within one
run, and rerun before believing a difference of a few percent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BUNDLE = Path(__file__).resolve().parents[1] / "src" / "gout_edge" / "demo" / "bundle"

# Properties on top of the backend's configuration ({"PERFORMANCE_HINT": "LATENCY",
# "INFERENCE_PRECISION_HINT": "f32"}). OpenVINO does not expose TBB's or OpenMP's wait policy.
VARIANTS: dict[str, dict[str, object]] = {
    "base": {},
    "pinning": {"ENABLE_CPU_PINNING": True},
    "no-pinning": {"ENABLE_CPU_PINNING": False},
    "threads1": {"INFERENCE_NUM_THREADS": 1},
    "threads2": {"INFERENCE_NUM_THREADS": 2},
    "no-ht": {"ENABLE_HYPER_THREADING": False},
    "core-any": {"SCHEDULING_CORE_TYPE": "ANY_CORE"},
}


def cpu_class() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    isa = ("AVX-512 VNNI" if "avx512_vnni" in flags else "AVX-512" if "avx512f" in flags
           else "AVX2 VNNI" if "avx_vnni" in flags else "AVX2" if "avx2" in flags else "no AVX2")
    return f"{model}, {os.cpu_count()} CPUs, {isa}"


def child(variants: list[str], gaps: list[float], n: int, seed: int) -> list[dict]:
    """Every variant compiled in this process, their (gap, variant) trials shuffled together: each
    trial runs the variant once untimed (its threads were just busy), sleeps ``gap``, then times one
    inference — so each gap is the variant's own idle time, and load drift spreads over all."""
    import openvino as ov

    from gout_edge.edge_runtime.imaging.preprocess import prepare
    from gout_edge.manifest import InputSpec

    core = ov.Core()
    weights = np.frombuffer((BUNDLE / "model.int8.bin").read_bytes(), np.uint8)
    model = core.read_model((BUNDLE / "model.int8.xml").read_text(), ov.Tensor(weights))
    shape = model.inputs[0].get_partial_shape()
    spec = InputSpec(height=shape[2].get_length(), width=shape[3].get_length())
    images = np.load(BUNDLE / "reference" / "inputs.npz")  # the bundle's reference screens
    batch = prepare(images[images.files[0]], spec).tensor[None]  # (1, 1, H, W)
    requests, out = {}, {}
    for variant in variants:
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        config.update(VARIANTS[variant])
        compiled = core.compile_model(model, "CPU", config)
        kernels: set[str] = set()  # the ISA part of each primitive's implementation type
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "primitiveType" in info:
                kernels.update(re.findall(r"avx512\w*|avx2\w*|amx\w*|sse42|ref", str(info["primitiveType"].astype(str))))
        props = {}
        for name in ("INFERENCE_NUM_THREADS", "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING", "SCHEDULING_CORE_TYPE",
                     "NUM_STREAMS"):
            try:
                props[name] = str(compiled.get_property(name))
            except Exception:  # noqa: BLE001 - a property this OpenVINO does not have
                props[name] = "n/a"
        requests[variant] = compiled.create_infer_request()
        for _ in range(20):  # warm up
            requests[variant].infer({0: batch})
        out[variant] = {"variant": variant, "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA", "native"),
                        "kernels": sorted(kernels), "properties": props}
    trials = [(g, v) for g in gaps for v in variants for _ in range(n)]
    random.Random(seed).shuffle(trials)
    times: dict[tuple[float, str], list[float]] = {(g, v): [] for g in gaps for v in variants}
    for gap, variant in trials:
        request = requests[variant]
        request.infer({0: batch})
        if gap:
            time.sleep(gap / 1e3)
        t0 = time.perf_counter()
        request.infer({0: batch})
        times[gap, variant].append((time.perf_counter() - t0) * 1e3)
    for variant in variants:
        stats = {}
        for gap in gaps:
            a = np.array(times[gap, variant])
            stats[str(int(gap))] = {"p50": float(np.median(a)), "p90": float(np.percentile(a, 90)),
                                    "p99": float(np.percentile(a, 99)), "max": float(a.max()), "n": len(a)}
        out[variant]["stats"] = stats
    return list(out.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaps", default="0,50,200,1000", help="idle gaps before each inference, ms")
    ap.add_argument("--n", type=int, default=30, help="inferences per gap")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--isa", default="native,avx2", help="native and/or avx2 (ONEDNN_MAX_CPU_ISA=AVX2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write every child's result here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    gaps = [float(g) for g in args.gaps.split(",")]
    if args.child:
        print(json.dumps(child(args.child.split(","), gaps, args.n, args.seed)))
        return
    print(f"CPU: {cpu_class()}")
    results = []
    for isa in args.isa.split(","):
        env = dict(os.environ)
        env.pop("ONEDNN_MAX_CPU_ISA", None)
        if isa == "avx2":
            env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        out = subprocess.run([sys.executable, __file__, "--child", args.variants, "--gaps", args.gaps, "--n", str(args.n),
                              "--seed", str(args.seed)], env=env, capture_output=True, text=True, check=False)
        if out.returncode:
            print(f"{isa}: failed\n{out.stderr[-2000:]}")
            continue
        for r in json.loads(out.stdout.strip().splitlines()[-1]):
            results.append(r)
            print(f"\n{isa:6s} {r['variant']:10s} kernels {','.join(r['kernels'])}  {r['properties']}")
            for gap, s in r["stats"].items():
                print(f"   gap {gap:>5s} ms: p50 {s['p50']:7.2f}  p90 {s['p90']:7.2f}  p99 {s['p99']:7.2f}  "
                      f"max {s['max']:7.2f} ms  (n={s['n']})")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_class(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
