"""Old vs new bedside path on the bench screens, stage by stage, interleaved in one process.

    python benchmarks/compare_decode_paths.py --frames 200 --runs 3

Old: ``cv2.imdecode(IMREAD_COLOR)`` of the whole 1080p MJPG screen, the region's grey conversion
and a numpy-gathered colour sample (the runtime before the fast decode). New: ``ScreenDecoder``
(one colour decode) and ``FramePreparer`` (one pass crop → tensor, OpenCV-gathered colour sample). Both feed the same ``Scorer``, frame by
frame alternately, so a shared machine's load hits them alike. Then the same two paths as
pipelines (``pipeline``): sequential decode → result, against decoding frame n+1 on a thread while
frame n is inferred (a queue of each ``--ahead`` depth: 1 is what video files get, 2 for
comparison), reporting time per frame and capture-to-result latency (which counts the queue wait).
Prints medians over runs and the spread (min–max of the run medians).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import tempfile
import threading
import time

import cv2
import numpy as np

from gout_edge.calibration.phantom.video import mjpg_screens
from gout_edge.edge_runtime.bundle import open_bundle
from gout_edge.edge_runtime.preprocess import COLOUR_STRIDE, PreparedFrame, Roi, colour_blobs, prepare
from gout_edge.edge_runtime.scoring import Scorer
from gout_edge.edge_runtime.sources.video import ScreenDecoder
from gout_edge.edge_runtime.stream import FramePreparer, RoiTracker
from gout_edge.edge_runtime.vote import decide

STAGES = ("decode", "roi", "preprocess", "inference", "vote", "journal")


class LegacyPreparer:
    """``FramePreparer`` as it was: grey copy of the region, numpy strided colour sample."""

    def __init__(self, input_spec, spec) -> None:
        self.input_spec, self.spec = input_spec, spec

    def __call__(self, image, roi):
        if roi is None:
            return prepare(image, self.input_spec, self.spec)
        crop = image[roi.y0 : roi.y1, roi.x0 : roi.x1]
        bgr = crop if crop.shape[2] == 3 else np.ascontiguousarray(crop[:, :, :3])
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        colour = colour_blobs(np.ascontiguousarray(bgr[::COLOUR_STRIDE, ::COLOUR_STRIDE, :3]))
        p = prepare(grey, self.input_spec, self.spec, Roi(0, 0, grey.shape[1], grey.shape[0]))
        return PreparedFrame(p.tensor, roi, p.blank, colour)


def stages_run(bundle, scorer, frames, n, warmup):
    m = bundle.manifest
    paths = {
        "old": (lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                RoiTracker(m.preprocess), LegacyPreparer(m.input, m.preprocess)),
        "new": (lambda data: ScreenDecoder.jpeg(data)[0], RoiTracker(m.preprocess), FramePreparer(m.input, m.preprocess)),
    }
    samples = {k: {s: [] for s in (*STAGES, "end_to_end")} for k in paths}
    probs = {k: [] for k in paths}
    folder = tempfile.mkdtemp(prefix="compare-decode-")
    journal = open(os.path.join(folder, "j.jsonl"), "w")
    try:
        for i in range(warmup + n):
            data = frames[i % len(frames)]
            names = list(paths)
            order = names[i % len(names):] + names[: i % len(names)]
            for name in order:
                decode, tracker, preparer = paths[name]
                t = [time.perf_counter()]
                image = decode(data)
                t.append(time.perf_counter())
                roi, _ = tracker.locate(image)
                t.append(time.perf_counter())
                prepared = preparer(image, roi)
                t.append(time.perf_counter())
                score = scorer.score_prepared([prepared])[0]
                t.append(time.perf_counter())
                probs[name].append(score.probability)
                decide(probs[name][-200:], m.decision)
                t.append(time.perf_counter())
                journal.write(json.dumps({"frame": i, "p": score.probability}) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
                t.append(time.perf_counter())
                if i >= warmup:
                    for k, s in enumerate(STAGES):
                        samples[name][s].append((t[k + 1] - t[k]) * 1e3)
                    samples[name]["end_to_end"].append((t[-1] - t[0]) * 1e3)
    finally:
        journal.close()
        os.unlink(os.path.join(folder, "j.jsonl"))
        os.rmdir(folder)
    return samples, float(np.max(np.abs(np.subtract(probs["old"], probs["new"]))))


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
    ap.add_argument("--warmup", type=int, default=10)
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
        samples, diff = stages_run(bundle, scorer, frames, args.frames, args.warmup)
        seq = pipeline_run(bundle, scorer, frames, args.frames, 0)
        ahead = {d: pipeline_run(bundle, scorer, frames, args.frames, d) for d in args.ahead}
        row = {name: {s: float(np.percentile(v, 50)) for s, v in st.items()} for name, st in samples.items()}
        for name in samples:
            row[name]["end_to_end_p99"] = float(np.percentile(samples[name]["end_to_end"], 99))
        row["max_probability_diff"] = diff
        row["pipeline"] = {"sequential_period_ms": seq[0], "sequential_latency_ms": seq[1]}
        for d, (period, latency) in ahead.items():
            row["pipeline"][f"ahead{d}_period_ms"], row["pipeline"][f"ahead{d}_latency_ms"] = period, latency
        per_run.append(row)
        print(f"run {r + 1}: " + json.dumps(row), flush=True)

    def med(get):
        v = [get(r) for r in per_run]
        return f"{np.median(v):7.2f} [{min(v):.2f}–{max(v):.2f}]"

    print(f"\nmedian over {args.runs} runs [spread of the run medians], ms (p50 per stage)")
    print(f"{'stage':<16}{'old':>24}{'new':>24}{'new/old':>24}")
    for s in (*STAGES, "end_to_end", "end_to_end_p99"):
        print(f"{s:<16}{med(lambda r, s=s: r['old'][s]):>24}{med(lambda r, s=s: r['new'][s]):>24}"
              f"{med(lambda r, s=s: r['new'][s] / r['old'][s] if r['old'][s] else float('nan')):>24}")
    outside = lambda r, k: r[k]["end_to_end"] - r[k]["inference"]  # noqa: E731
    print(f"{'outside model':<16}{med(lambda r: outside(r, 'old')):>24}{med(lambda r: outside(r, 'new')):>24}"
          f"{med(lambda r: outside(r, 'new') / outside(r, 'old')):>24}")
    print(f"{'e2e / inference':<16}{med(lambda r: r['old']['end_to_end'] / r['old']['inference']):>24}"
          f"{med(lambda r: r['new']['end_to_end'] / r['new']['inference']):>24}")
    for k in per_run[0]["pipeline"]:
        print(f"pipeline {k:<28}{med(lambda r, k=k: r['pipeline'][k])}")
    print(f"max |p_old − p_new| over all frames and runs: {max(r['max_probability_diff'] for r in per_run):.5f}")


if __name__ == "__main__":
    main()
