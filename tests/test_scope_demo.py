"""The demo bundle's scope guard on images it never saw: generated out-of-scope exams (another seed
than the one export compared the methods on), real files other software wrote (pydicom's test
data: a GE power-Doppler lymph node, a Philips obstetric screen, a chest radiograph, CT and MR
slices), and in-scope phantom patients of an unseen seed. The exam-level figures over video,
DICOM and stills come from ``python benchmarks/scope_exams.py`` (README, model card)."""

from __future__ import annotations

import itertools

import pytest

from gout_edge.edge_runtime.exam.driver import run_exam
from gout_edge.edge_runtime.exam.session import ExamSession
from gout_edge.edge_runtime.pipeline.verdict import INDETERMINATE, ReasonCode
from gout_edge.edge_runtime.sources import open_source
from gout_edge.phantom import generate_out_of_scope, write_phantoms

pydicom_data = pytest.importorskip("pydicom.data")


@pytest.fixture(scope="module")
def demo(demo):
    """The session's demo bundle and scorer (tests/conftest.py), which must carry its scope guard."""
    if demo[0].manifest.scope is None:
        pytest.fail("the demo bundle has no scope guard: rebuild it with scripts/build-demo-bundle.sh")
    return demo


def test_generated_out_of_scope_exams_end_indeterminate_for_scope(demo, tmp_path):
    bundle, scorer = demo
    images = generate_out_of_scope(seed=5, per_category=2)
    outcomes = {}
    for kind, group in itertools.groupby(images, key=lambda im: im.kind):
        with ExamSession(bundle, scorer, tmp_path / kind, overlays=0, dicom_results=False) as session:
            for image in group:
                session.feed(image.screen)
        result = session.result()
        outcomes[kind] = (result.diagnosis, result.reason.code is ReasonCode.OUT_OF_SCOPE)
    refused = [k for k, (d, scope) in outcomes.items() if d == INDETERMINATE and scope]
    assert len(refused) >= 0.95 * len(outcomes), {k: v for k, v in outcomes.items() if k not in refused}


@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "OBXXXX1A.dcm", "RG1_UNCR.dcm", "CT_small.dcm", "MR_small.dcm"])
def test_real_images_of_other_things_get_no_verdict(demo, tmp_path, name):
    bundle, scorer = demo
    path = pydicom_data.get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is in the pydicom-data package, which is not installed (pip install pydicom-data)")
    result = run_exam(open_source("dicom", path), bundle, scorer, tmp_path, overlays=0).patients[0]
    assert result.diagnosis == INDETERMINATE
    if result.scope_judged:  # a frame the guard saw (not blank): refused, and the exam says why
        assert result.scope_refused == result.scope_judged and result.reason.code is ReasonCode.OUT_OF_SCOPE, result.reason


@pytest.mark.slow
def test_in_scope_phantoms_of_an_unseen_seed_are_answered(demo, tmp_path):
    bundle, scorer = demo
    write_phantoms(tmp_path / "data", 8, seed=9, formats=("png",))
    outcomes = []
    for folder in sorted((tmp_path / "data" / "images").iterdir()):
        result = run_exam(open_source("images", folder), bundle, scorer, tmp_path / "s" / folder.name,
                          overlays=0).patients[0]
        outcomes.append(result)
        assert result.reason.code is not ReasonCode.OUT_OF_SCOPE, (folder.name, result.reason)
    judged = sum(r.scope_judged for r in outcomes)
    assert sum(r.scope_refused for r in outcomes) <= 0.1 * judged  # false refusals, frame level
    assert sum(r.diagnosis == INDETERMINATE for r in outcomes) <= 1
