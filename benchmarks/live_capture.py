"""A live 1080p MJPG grabber through the real exam loop: capture → result as the cart runs it.

    python benchmarks/live_capture.py --seconds 30 --runs 3

A grabber stand-in replays a phantom recording (one patient, every view, its freezes and probe
lifts) as 1920 × 1080 MJPG at 30 frames/s — ``read`` blocks until the next frame is due, as a V4L2
device does, and hands over the undecoded JPEG — into ``CaptureSource`` (live, ``ScreenDecoder``)
and ``run_exam`` with the bundle's bedside engine, journal and reports included. Two ways,
alternated run by run so that load on a shared machine hits both: ``deferred`` (the cart's way:
the capture thread only grabs, the reader decodes the frame it takes, ``defer_decoding``) and
``eager`` (the capture thread decodes every frame, dropped ones included — the way before).

Per run: results per second, capture → result p50 / p99 over every frame (the session's timing)
and over the key frames' journal lines — a frame's capture is stamped when it leaves the source,
which in the eager way is after its decode, so ``grab_to_result_p50_ms`` adds the decode p50
there to compare the two ways from the grab — and beside them the serial sum — decode p50 + feed p50
(region → preprocessing → inference with the CAM → vote → journal) — which a frame would take
with nothing waiting; the difference is the wait for the reader (a frame grabbed while the
previous one is inferred waits for it) and the CPU the two threads take from each other.
Prints medians over runs with the spread (min–max of the run values); ``--json`` for machines.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from gout_edge.edge_runtime.exam.driver import run_exam
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.sources.video import CaptureSource, ScreenDecoder
from gout_edge.phantom.video import mjpg_recording

WAYS = ("deferred", "eager")
GRABBER_FPS = 30.0  # a USB grabber's 1080p MJPG rate (the phantom recording is replayed faster than it was made)


class ReplayGrabber:
    """A ``cv2.VideoCapture`` stand-in: undecoded JPEGs at ``fps``, looping, for ``seconds``."""

    def __init__(self, jpegs: list[bytes], fps: float, seconds: float) -> None:
        self.jpegs, self.period = jpegs, 1.0 / fps
        self.start = time.monotonic()
        self.count = int(seconds * fps)
        self.index = 0

    def read(self):
        if self.index >= self.count:
            return False, None
        time.sleep(max(0.0, self.start + self.index * self.period - time.monotonic()))
        data = self.jpegs[self.index % len(self.jpegs)]
        self.index += 1
        return True, np.frombuffer(data, np.uint8)[None, :]

    def get(self, prop):
        return 1.0 / self.period if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        pass


class EagerSource(CaptureSource):
    """The way before: the capture thread decodes every frame it grabs."""

    def defer_decoding(self):
        return None


def one_run(bundle, scorer, jpegs: list[bytes], way: str, seconds: float) -> dict:
    decode_ms: list[float] = []
    lock = threading.Lock()
    decoder = ScreenDecoder()

    def timed(raw):
        t0 = time.perf_counter()
        out = decoder(raw)
        with lock:
            decode_ms.append((time.perf_counter() - t0) * 1e3)
        return out

    grabber = ReplayGrabber(jpegs, GRABBER_FPS, seconds)
    kind = CaptureSource if way == "deferred" else EagerSource
    source = kind(lambda: grabber, "replayed grabber", live=True, decoder=timed, backoff_s=())
    with tempfile.TemporaryDirectory(prefix="gout-edge-live-") as out:
        exam = run_exam(source, bundle, scorer, out)
        (patient,) = exam.patients
        journal = [json.loads(line) for line in patient.journal.read_text().splitlines()]
    keys = [r["capture_to_result_ms"] for r in journal if r.get("type") == "key_frame"]
    timing = patient.timing
    decode_p50 = float(np.median(decode_ms))
    return {
        "way": way, "results_per_s": timing["frames_per_s"], "captured": exam.frames_captured,
        "results": exam.frames_seen, "decoded": len(decode_ms),
        "capture_to_result_p50_ms": timing["capture_to_result_ms"]["p50"],
        "capture_to_result_p99_ms": timing["capture_to_result_ms"]["p99"],
        "key_frames": len(keys), "key_frame_journal_p50_ms": float(np.median(keys)) if keys else None,
        "grab_to_result_p50_ms": timing["capture_to_result_ms"]["p50"] + (decode_p50 if way == "eager" else 0.0),
        "decode_p50_ms": decode_p50, "feed_p50_ms": timing["feed_ms"]["p50"],
        "serial_sum_p50_ms": decode_p50 + timing["feed_ms"]["p50"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=None, help="bundle directory (default: the demo bundle)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    ap.add_argument("--runs", type=int, default=3, help="runs of each way, alternated")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args(argv)
    if args.bundle is None:
        import gout_edge

        args.bundle = Path(gout_edge.__file__).parent / "demo" / "bundle"
    logging.getLogger("gout_edge.edge_runtime.sources.video").setLevel(logging.CRITICAL)  # each replay ends "lost"
    bundle = open_bundle(args.bundle)
    scorer = Scorer(bundle)
    jpegs = mjpg_recording()
    runs = []
    for k in range(args.runs):
        for way in WAYS if k % 2 == 0 else WAYS[::-1]:
            runs.append(one_run(bundle, scorer, jpegs, way, args.seconds))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    fields = ("results_per_s", "grab_to_result_p50_ms", "capture_to_result_p50_ms", "capture_to_result_p99_ms",
              "key_frame_journal_p50_ms",
              "decode_p50_ms", "feed_p50_ms", "serial_sum_p50_ms")
    summary = {}
    for way in WAYS:
        mine = [r for r in runs if r["way"] == way]
        summary[way] = {f: {"median": float(np.median([r[f] for r in mine if r[f] is not None])),
                            "min": min(r[f] for r in mine if r[f] is not None),
                            "max": max(r[f] for r in mine if r[f] is not None)} for f in fields}
        summary[way]["decoded_per_result"] = float(np.median([r["decoded"] / max(1, r["results"]) for r in mine]))
    doc = {"bundle": bundle.identity, "engine": f"{scorer.backend} {scorer.precision}", "seconds": args.seconds,
           "runs": runs, "summary": summary}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{doc['engine']}, {args.runs} runs of {args.seconds:g} s per way, 1080p MJPG at {GRABBER_FPS:g} frames/s; "
          "median [min–max] over runs")
    for f in fields:
        row = "  ".join(f"{way} {s[f]['median']:7.1f} [{s[f]['min']:.1f}–{s[f]['max']:.1f}]"
                        for way, s in summary.items())
        print(f"{f:28s} {row}")
    print("decoded per result          " + "  ".join(f"{w} {summary[w]['decoded_per_result']:.2f}" for w in WAYS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
