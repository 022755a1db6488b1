"""Short, seeded fuzz runs (hypothesis) of the four readers that take files from outside: the DICOM
reader, the image loader, the index loader and the manifest reader. Each mutant of a real seed
file must be read or refused with a ``GoutEdgeError`` — nothing else. The long run is
``python scripts/fuzz.py`` (README, "Robustness"); the harness is ``tests/fuzzlib.py``."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import fuzzlib
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = dict(derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
OPS = st.lists(
    st.tuples(st.sampled_from(fuzzlib.OPS), st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 2**30)),
    min_size=1, max_size=4,
)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, list[Path]]:
    return fuzzlib.make_seeds(tmp_path_factory.mktemp("fuzz-seeds"))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's notes on invalid values; not what is tested
        yield


def check(target: str, data: bytes, work: Path, suffix: str | None = None) -> None:
    outcome = fuzzlib.run_target(target, data, work, suffix)
    assert outcome.status != "crash", f"{target}: {outcome.error}: {outcome.message}"


def test_every_seed_is_read_unchanged(seeds, tmp_path):
    for target, files in seeds.items():
        for path in files:
            outcome = fuzzlib.run_target(target, path.read_bytes(), tmp_path / target, path.suffix)
            assert outcome.status == "ok" or (target == "dicom" and outcome.status == "refused"), (path.name, outcome)


def test_dicom_reader(seeds, tmp_path):
    files = seeds["dicom"]

    @settings(max_examples=150, **SETTINGS)
    @given(st.integers(0, len(files) - 1), st.integers(0, len(files) - 1), OPS)
    def run(i, j, ops):
        check("dicom", fuzzlib.mutate(files[i].read_bytes(), ops, files[j].read_bytes()), tmp_path / "dicom")

    run()


def test_image_loader(seeds, tmp_path):
    files = seeds["image"]

    @settings(max_examples=80, **SETTINGS)
    @given(st.integers(0, len(files) - 1), OPS)
    def run(i, ops):
        check("image", fuzzlib.mutate(files[i].read_bytes(), ops), tmp_path / "image", files[i].suffix)

    run()


def test_index_loader(seeds, tmp_path):
    table = seeds["index"][0].read_bytes()

    @settings(max_examples=80, **SETTINGS)
    @given(OPS, st.binary(max_size=64))
    def run(ops, extra):
        check("index", fuzzlib.mutate(table, ops, extra), tmp_path / "index")

    run()


def test_manifest_reader(seeds, tmp_path):
    manifest = seeds["manifest"][0].read_bytes()

    @settings(max_examples=60, **SETTINGS)
    @given(OPS, st.integers(0, 2**32))
    def run(ops, seed):
        check("manifest", fuzzlib.mutate(manifest, ops), tmp_path / "manifest")
        check("manifest", fuzzlib.mutate_json(manifest, random.Random(seed)), tmp_path / "manifest")

    run()
