"""Decoding in line vs one (or more) frames ahead on a thread, on the bench screens.

    python benchmarks/compare_decode_paths.py --frames 200 --runs 3

The bedside path (``ScreenDecoder`` → ``RoiTracker`` → ``FramePreparer`` → ``Scorer``) as a
pipeline: sequential decode → result, against decoding frame n+1 on a thread while frame n is
inferred (a queue of each ``--ahead`` depth: 1 is what video files get, 2 for comparison),
reporting time per frame and capture-to-result latency (which counts the queue wait). Prints
medians over runs and the spread (min–max of the run medians). The stage-by-stage figures of the
same path are ``gout-edge bench``'s; the one-pass crop → tensor against the naive path is
``benchmarks/test_crop_to_tensor.py``.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time

import numpy as np

from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.stream import FramePreparer, RoiTracker
from gout_edge.edge_runtime.sources.video import ScreenDecoder
from gout_edge.phantom.video import mjpg_screens


def pipeline_run(bundle, scorer, frames, n, ahead):
    """Per-frame period and capture-to-result latency of the new path, decoding in line (``ahead``
    0) or on a thread ``ahead`` frames ahead; the latency counts the wait in the queue."""
    m = bundle.manifest
    tracker, preparer = RoiTracker(m.preprocess), FramePreparer(m.input, m.preprocess)

    def decode(data):
        return ScreenDecoder.jpeg(data)[0]

    def process(image):
        roi, _ = tracker.locate(image)
        return scorer.score_prepared([preparer(image, roi)])[0]

    latency = []
    start = time.perf_counter()
    if not ahead:
        for i in range(n):
            t0 = time.perf_counter()  # the bytes arrive: capture
            process(decode(frames[i % len(frames)]))
            latency.append((time.perf_counter() - t0) * 1e3)
    else:
        q: queue.Queue = queue.Queue(maxsize=ahead)

        def reader():
            for i in range(n):
                t0 = time.perf_counter()
                q.put((decode(frames[i % len(frames)]), t0))
            q.put(None)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        while (item := q.get()) is not None:
            image, t0 = item
            process(image)
            latency.append((time.perf_counter() - t0) * 1e3)
        th.join()
    period = (time.perf_counter() - start) * 1e3 / n
    return period, float(np.median(latency))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--backend", default="openvino")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--ahead", type=int, nargs="+", default=[1, 2], help="read-ahead queue depths to time")
    args = ap.parse_args()
    bundle = open_bundle()
    scorer = Scorer(bundle, args.backend, args.precision)
    frames = mjpg_screens()
    per_run = []
    for r in range(args.runs):
        row = {}
        for depth in (0, *args.ahead):
            period, latency = pipeline_run(bundle, scorer, frames, args.frames, depth)
            name = "sequential" if depth == 0 else f"ahead{depth}"
            row[f"{name}_period_ms"], row[f"{name}_latency_ms"] = period, latency
        per_run.append(row)
        print(f"run {r + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)

    print(f"\nmedian over {args.runs} runs [spread of the run medians], ms")
    for k in per_run[0]:
        v = [r[k] for r in per_run]
        print(f"{k:<28}{np.median(v):7.2f} [{min(v):.2f}–{max(v):.2f}]")


if __name__ == "__main__":
    main()
