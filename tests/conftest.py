"""Shared fixtures: what is expensive to make is made once per session and shared by every test
file that needs it. Helpers and fakes live in ``tests/support`` (``from support.screens import
screen``); no test module imports another.

Once per session:

- ``small_bundle``: a random-weight 3-stage model exported as a whole FP32 bundle at 96 × 224
  (reference set, scope guard, CAM scale; calibrated on 8 phantom patients). Tests that need *a*
  bundle take this one (or a copy); tests of the ONNX graph alone take
  ``support.bundles.export_graph``.
- ``scan_bundle_dir``: a calibrated copy of it (patient threshold 0.3, no scope guard), for exams.
- ``int8_bundle``: a 2-stage model with INT8 models, calibrated on the toy data set.
- ``phantom_dir``: two phantom patients (1 gout, 1 control) as PNG, DICOM and video.
- ``toy_csv``: the toy data set's index table (8 patients × 6 PNG frames).
- ``demo``: the shipped demo bundle and a two-thread scorer on it.

Every test runs in a temporary working folder of its own: a command that writes its default
output to ``./`` (``verify``'s record, ``evaluate``'s reports, ``scan``'s sessions) never writes
into the checkout. Tests that stay slow whatever is shared carry ``@pytest.mark.slow``
(``pytest -m "not slow"`` while developing; CI runs everything).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.bundles import SMALL, calibrated_copy, export_small
from support.toy_data import make_toy_dataset


@pytest.fixture(autouse=True)
def _work_in_a_temporary_folder(tmp_path_factory, monkeypatch):
    """Nothing a test writes to the working folder lands in the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session", autouse=True)
def _hypothesis_home(tmp_path_factory):
    """Hypothesis keeps its files (the constants it finds in the sources) under ``./.hypothesis``
    of the folder pytest started in: here, a temporary folder instead (tests/test_fuzz.py)."""
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:  # hypothesis is a dev extra; test_fuzz.py skips without it
        return
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))


@pytest.fixture
def no_device_key(monkeypatch, tmp_path):
    """No trusted key from the environment, the home folder or the system of whoever runs the tests
    (unsigned bundles open); crash files and caches in the test's folder."""
    monkeypatch.delenv("GOUT_EDGE_PUBLIC_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("gout_edge.signing.DEFAULT_PUBLIC_KEYS", ())


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory):
    """(ExportResult, torch model) for a 3-stage model at 96 × 224: a whole FP32 bundle, its
    calibration images (scope guard, CAM scale, reference pool) from 8 phantom patients instead of
    export's 24 (about 90 images instead of 270; every check on it holds either way)."""
    return export_small(tmp_path_factory.mktemp("bundle"), phantom_patients=8)


@pytest.fixture(scope="session")
def scan_bundle_dir(small_bundle, tmp_path_factory) -> Path:
    """A calibrated copy of the small bundle (``support.bundles.DECISION``, no scope guard). Shared:
    open it, never change it."""
    return calibrated_copy(small_bundle, tmp_path_factory.mktemp("scan-bundle") / "bundle")


@pytest.fixture(scope="session")
def toy_csv(tmp_path_factory) -> Path:
    """The toy data set's index table. Shared: read it, never write next to it."""
    return make_toy_dataset(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def int8_bundle(toy_csv, tmp_path_factory):
    """ExportResult of a 2-stage model with INT8 models (ONNX Runtime and OpenVINO), calibrated and
    gated on the toy data set (``accept_drop``: a random model's fidelity is not what is tested)."""
    import torch

    from gout_edge.export.build import ExportConfig, export_bundle
    from gout_edge.export.model import GoutResNet

    root = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    torch.save(GoutResNet(2).state_dict(), root / "m.pt")
    config = ExportConfig(root / "m.pt", root / "bundle", input=SMALL, calib=toy_csv, accept_drop=True, threads=1)
    return export_bundle(config)


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """Two phantom patients (1 gout, 1 control) as PNG, DICOM and video (seed 0). Shared: read only."""
    from gout_edge.phantom import write_phantoms

    root = tmp_path_factory.mktemp("scan-phantoms")
    write_phantoms(root, 2, seed=0, formats=("png", "dicom", "video"))
    return root


@pytest.fixture(scope="session")
def demo():
    """The demo bundle (phantom-trained, calibrated, with its scope guard) and a two-thread scorer."""
    from gout_edge.edge_runtime.inference.loading import open_bundle
    from gout_edge.edge_runtime.inference.scoring import Scorer

    bundle = open_bundle()
    scorer = Scorer(bundle, threads=2)
    yield bundle, scorer
    scorer.close()
