#!/usr/bin/env python
"""The long fuzz run: mutated DICOM files, images, index tables and manifests fed to gout-edge's
readers in a watched worker process (docs/design.md §8; the short seeded runs are in
tests/test_fuzz.py, and the harness itself in tests/fuzzlib.py).

    python scripts/fuzz.py --inputs 10000 --targets dicom --seed 0 --timeout 10 --out fuzz-out

Each input must end in success or a GoutEdgeError. Reported per target: inputs, accepted,
refused, **crashes** (any other exception, or the worker dying), **hangs** (an input running past
``--timeout`` seconds; the worker is killed and restarted) and the worker's **peak RSS** (VmHWM).
Crashing and hanging inputs are saved under ``--out`` with what happened, for reproduction. The
exit status is 1 when anything crashed or hung, or peak RSS passed ``--max-rss-mb``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import fuzzlib  # noqa: E402  (tests/fuzzlib.py: seeds, mutations, targets)


def _vmhwm_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(conn, memory_limit_mb: int) -> None:
    """Runs inputs sent over ``conn``; answers (status, error, message, seconds, peak RSS MB)."""
    import logging
    import warnings

    if memory_limit_mb:
        import resource

        limit = memory_limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")  # pydicom's notes about invalid values: not what is looked for
    logging.disable(logging.CRITICAL)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # libpng/libjpeg print damaged-data notes straight to stderr
    work = Path(tempfile.mkdtemp(prefix="gout-edge-fuzz-"))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        target, data, suffix = job
        start = time.perf_counter()
        outcome = fuzzlib.run_target(target, data, work / target, suffix)
        conn.send((outcome.status, outcome.error, outcome.message, time.perf_counter() - start, _vmhwm_mb()))


class Worker:
    def __init__(self, memory_limit_mb: int) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.peak_mb = 0.0
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, self.memory_limit_mb), daemon=True)
        self.proc.start()
        child.close()

    def run(self, target: str, data: bytes, suffix: str | None, timeout_s: float) -> tuple:
        self.conn.send((target, data, suffix))
        if not self.conn.poll(timeout_s):
            self.restart()
            return ("hang", "Timeout", f"no answer within {timeout_s:g} s", timeout_s, 0.0)
        try:
            answer = self.conn.recv()
        except EOFError:
            self.proc.join(5)
            code = self.proc.exitcode
            self.restart()
            return ("crash", "WorkerDied", f"the worker process died (exit status {code})", 0.0, 0.0)
        self.peak_mb = max(self.peak_mb, answer[4])
        return answer

    def restart(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self._start()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=10_000, help="mutated inputs per target (default 10000)")
    ap.add_argument("--targets", default="dicom", help="comma list of " + ", ".join(fuzzlib.TARGETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds one input may take (default 10)")
    ap.add_argument("--memory-limit-mb", type=int, default=6144, help="address-space limit of the worker (0: none)")
    ap.add_argument("--max-rss-mb", type=float, default=1536.0, help="peak RSS above this fails the run")
    ap.add_argument("--out", type=Path, default=Path("fuzz-out"), help="folder for seeds and failing inputs")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in fuzzlib.TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; choose from {', '.join(fuzzlib.TARGETS)}")

    seeds = fuzzlib.make_seeds(args.out / "seeds")
    rng = random.Random(args.seed)
    worker = Worker(args.memory_limit_mb)
    failures = args.out / "failures"
    summary: dict[str, dict] = {}
    started = time.monotonic()
    try:
        for target in targets:
            counts: Counter[str] = Counter()
            errors: Counter[str] = Counter()
            slowest = (0.0, "")
            t0 = time.monotonic()
            files = seeds[target]
            for n in range(args.inputs):
                seed = rng.choice(files)
                data = seed.read_bytes()
                if target == "manifest" and rng.random() < 0.5:
                    try:
                        mutated = fuzzlib.mutate_json(data, rng)
                    except ValueError:
                        mutated = data
                    how = "json values replaced"
                else:
                    ops = fuzzlib.random_ops(rng)
                    mutated = fuzzlib.mutate(data, ops, rng.choice(files).read_bytes())
                    how = repr(ops)
                suffix = seed.suffix if target == "image" else None
                status, error, message, seconds, _ = worker.run(target, mutated, suffix, args.timeout)
                counts[status] += 1
                if status == "refused":
                    errors[error] += 1
                if seconds > slowest[0]:
                    slowest = (seconds, f"{seed.name} {how}")
                if status in ("crash", "hang"):
                    failures.mkdir(parents=True, exist_ok=True)
                    stem = failures / f"{target}-{status}-{n:06d}"
                    stem.with_suffix(seed.suffix or ".bin").write_bytes(mutated)
                    stem.with_suffix(".txt").write_text(f"{status}: {error}: {message}\nseed {seed.name}\nops {how}\n")
                    print(f"{target} #{n}: {status} {error}: {message[:160]}", file=sys.stderr, flush=True)
                if (n + 1) % 1000 == 0:
                    print(f"{target}: {n + 1}/{args.inputs} inputs, {dict(counts)}, peak RSS "
                          f"{worker.peak_mb:.0f} MB, {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
            summary[target] = {
                "inputs": args.inputs, "accepted": counts["ok"], "refused": counts["refused"],
                "crashes": counts["crash"], "hangs": counts["hang"],
                "refusals_by_error": dict(errors.most_common()),
                "slowest_input_s": round(slowest[0], 3), "slowest_input": slowest[1][:200],
                "seconds": round(time.monotonic() - t0, 1), "seed_files": len(files),
            }
    finally:
        worker.close()
    total = {
        "targets": summary, "seed": args.seed, "timeout_s": args.timeout,
        "peak_rss_mb": round(worker.peak_mb, 1), "max_rss_mb": args.max_rss_mb,
        "seconds": round(time.monotonic() - started, 1), "python": sys.version.split()[0],
    }
    bad = sum(s["crashes"] + s["hangs"] for s in summary.values()) or worker.peak_mb > args.max_rss_mb
    if args.json:
        print(json.dumps(total, indent=2))
    else:
        for name, s in summary.items():
            print(f"{name:9s} {s['inputs']:7d} inputs  {s['accepted']:6d} accepted  {s['refused']:6d} refused  "
                  f"{s['crashes']} crashes  {s['hangs']} hangs  slowest {s['slowest_input_s']:.2f} s  ({s['seconds']:.0f} s)")
        print(f"peak RSS of the worker: {worker.peak_mb:.0f} MB (limit {args.max_rss_mb:.0f} MB); "
              f"{total['seconds']:.0f} s in all; {'FAIL' if bad else 'PASS'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
