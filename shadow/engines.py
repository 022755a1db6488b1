"""Two ways to run ``study.score_study`` over many studies; both hand each finished record to the
driver (``on_result``), which commits it, so the results do not depend on the engine.

- ``local``: a process pool on this machine (``spawn``; each worker opens both bundles once, with
  ``threads`` engine threads). A worker that dies while reading (a native decoder crashing on a
  damaged file) breaks the pool: the studies it had in flight are tried again one at a time in a
  fresh pool, and the one that kills a worker on its own becomes a failed row.
- ``ray``: Ray Data. The studies are a dataset (``from_items``); ``map_batches`` runs a callable
  class on a fixed pool of actors (``ActorPoolStrategy(size=workers)``, ``num_cpus=threads`` each),
  and each actor opens both bundles once with ``threads`` engine threads, so actors never ask for
  more cores than Ray gave them (ONNX Runtime ignores ``OMP_NUM_THREADS``; the thread count goes
  to its session options and to OpenVINO's ``INFERENCE_NUM_THREADS``). The driver streams the
  results (``iter_batches``) as they are made. With ``address`` it joins that cluster; without
  one, it uses the Ray of this process if one is running, else starts a local one.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gout_edge._io import dumps_json
from gout_edge.errors import CaptureError, GoutEdgeError, UsageError

from .archive import StudyRef
from .study import ModelSpec, failed_record, open_models, quiet_worker, score_study

__all__ = ["ENGINES", "WORKER_DIED", "RayStudyScorer", "available_cpus", "ray_cluster", "run_local", "run_ray"]

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
WORKER_DIED = "the worker process died while reading this study (a decoder crash on a damaged file?)"
MAX_BLOCKS = 10_000  # Ray Data blocks of studies: one study a block up to this many

ResultFn = Callable[[dict[str, Any]], None]


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------------------------
# local: a process pool

_models: list | None = None
_root: Path | None = None


def _init_worker(root: str, specs: Sequence[ModelSpec], threads: int) -> None:
    global _models, _root
    quiet_worker()
    _models = open_models(specs, threads)
    _root = Path(root)


def _ready() -> bool:
    return _models is not None


def _start(pool: ProcessPoolExecutor) -> None:
    """Wait until a worker has started and opened both bundles: a pool that cannot start is an
    error of the run, not of the studies that would have been in flight."""
    try:
        pool.submit(_ready).result()
    except BrokenProcessPool:
        raise GoutEdgeError("the local engine's worker processes could not start (see the log above); no study "
                            "was scored by them") from None


def _score(ref: dict[str, Any]) -> dict[str, Any]:
    assert _models is not None and _root is not None
    return score_study(StudyRef.from_dict(ref), _root, _models)


def run_local(refs: Sequence[StudyRef], root: Path, specs: Sequence[ModelSpec], workers: int, threads: int,
              on_result: ResultFn, score: Callable[[dict[str, Any]], dict[str, Any]] = _score) -> None:
    """The studies through ``workers`` processes; ``score`` (a module-level function, for spawn) is
    the per-study function of a worker."""
    context = multiprocessing.get_context("spawn")
    pending: deque[StudyRef] = deque(refs)
    suspects: deque[StudyRef] = deque()
    while pending or suspects:
        solo = bool(suspects)  # after a crash: the studies that were in flight, one at a time
        queue = suspects if solo else pending
        size = 1 if solo else workers
        with ProcessPoolExecutor(size, mp_context=context, initializer=_init_worker,
                                 initargs=(str(root), tuple(specs), threads)) as pool:
            _start(pool)
            inflight: dict[Future, StudyRef] = {}
            broken = False
            while (queue or inflight) and not broken:
                while queue and len(inflight) < (1 if solo else 2 * size):  # solo: the culprit alone
                    ref = queue.popleft()
                    inflight[pool.submit(score, ref.to_dict())] = ref
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    ref = inflight.pop(future)
                    try:
                        record = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if solo:
                            log.warning("study %s: %s", ref.key, WORKER_DIED)
                            on_result(failed_record(ref, WORKER_DIED, error_kind="worker"))
                        else:
                            suspects.append(ref)
                        continue
                    on_result(record)
            if broken:
                for ref in inflight.values():  # in flight when the pool broke: suspects too
                    suspects.append(ref)
                if not solo:
                    log.warning("a worker process died; the %d studies in flight are tried again one at a time",
                                len(suspects))


# --------------------------------------------------------------------------------------------
# ray: Ray Data with an actor pool


class RayStudyScorer:
    """The callable class of ``map_batches``: one per actor, both bundles opened once."""

    def __init__(self, root: str, specs: Sequence[ModelSpec], threads: int) -> None:
        quiet_worker()
        self.root = Path(root)
        self.models = open_models(specs, threads)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        records = [dumps_json(score_study(StudyRef.from_dict(json.loads(s)), self.root, self.models), indent=None)
                   for s in batch["study"]]
        return {"record": np.array(records, dtype=object)}


def _ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError("--engine ray needs Ray Data on this machine: pip install 'gout-edge[cluster]' "
                         "(or leave --engine out: the local engine needs nothing more)") from None
    return ray


@contextmanager
def ray_cluster(address: str | None) -> Iterator[int]:
    """Join ``address``, use this process's Ray, or start a local one (shut down again on leaving);
    yields the cluster's CPUs."""
    ray = _ray()
    started = _connect(ray, address)
    try:
        yield int(ray.cluster_resources().get("CPU", 1))
    finally:
        if started:
            ray.shutdown()


def _connect(ray, address: str | None) -> bool:
    """Join ``address``, use this process's Ray, or start a local one; True when started here."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, num_cpus=None if address else available_cpus(), include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
    except ConnectionError as exc:
        raise CaptureError(f"cannot join the Ray cluster at --address {address} ({exc}); check the address "
                           "(ray status on the head node prints it)") from None
    return True


def run_ray(refs: Sequence[StudyRef], root: Path, specs: Sequence[ModelSpec], workers: int, threads: int,
            on_result: ResultFn) -> None:
    """Inside ``ray_cluster``: the studies through an actor pool of ``workers`` actors."""
    ray = _ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the command draws its own, in studies
    context.execution_options.preserve_order = False  # results as they are made
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    items = [{"study": json.dumps(r.to_dict())} for r in refs]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), MAX_BLOCKS)))
    scored = ds.map_batches(
        RayStudyScorer,
        fn_constructor_args=(str(root), tuple(specs), threads),
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=threads,
        batch_size=1,
        batch_format="numpy",
    )
    for batch in scored.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
        for text in batch["record"]:
            on_result(json.loads(text))
