"""Issue 22, shadow evaluation (``gout-edge shadow``): a new bundle against the old over an archive.

One small phantom archive (4 DICOM studies with scanner rooms and months, a study whose files are
all truncated, a file that is no DICOM, a good study with one truncated file) and an "old" bundle
(the demo bundle with other thresholds) serve every test. Checked here: the local engine and Ray
Data (one actor with one CPU on a local Ray cluster started once for this module) give the same
tables; a study reads as ``scan --dicom`` reads it; damage is a row with its reason; a run killed
with SIGKILL halfway resumes without scoring a finished study again and ends with the same tables;
the report's figures (change table, kappa, McNemar, refusal rates, AUC, patient accuracy) match a
computation of their own from the Parquet tables (scipy, plain Python); the errors' exit codes.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.cli import run_cli
from support.json_schemas import validate
from support.shadow_archive import crashing_score, make_archive, old_bundle

from gout_edge.cli import main

pytestmark = [pytest.mark.usefixtures("no_device_key"), pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")]

ENGINE = ["--backend", "openvino", "--precision", "int8"]  # the demo bundle's auto choice, pinned


_main = run_cli


@pytest.fixture(scope="module")
def clean_env(tmp_path_factory):
    """No trusted key from whoever runs the tests, for this process, its workers and Ray's."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("GOUT_EDGE_PUBLIC_KEY", raising=False)
        mp.setenv("HOME", str(home))
        mp.setenv("XDG_STATE_HOME", str(home / "state"))
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory, clean_env):
    root = tmp_path_factory.mktemp("shadow")
    archive = make_archive(root / "phantoms", 4, seed=5)
    return archive, old_bundle(root / "old-bundle"), _snapshot(archive.archive)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _args(data, out: Path, *extra: str) -> list[str]:
    archive, old, _ = data
    return ["shadow", "--archive", str(archive.archive), "--against", str(old), "--out", str(out),
            "--labels", str(archive.labels), *ENGINE, "--json", *extra]


@pytest.fixture(scope="module")
def local_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    code, text = _main(*_args(data, out, "--engine", "local", "--workers", "2"))
    assert code == 0
    return validate("shadow", text), out


@pytest.fixture(scope="module")
def ray_cluster(clean_env):
    """A local Ray cluster for this module: 2 CPUs, as CI has."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _tables(out: Path):
    return pq.read_table(out / "studies.parquet"), pq.read_table(out / "frames.parquet")


def _rows(table) -> list[dict]:
    return table.to_pylist()


def test_local_and_ray_engines_give_the_same_tables(data, local_run, ray_cluster, tmp_path):
    doc, out = local_run
    code, text = _main(*_args(data, tmp_path / "out", "--engine", "ray", "--workers", "1", "--threads", "1"))
    assert code == 0
    ray_doc = validate("shadow", text)
    assert ray_doc["engine"] == {"name": "ray", "workers": 1, "threads_per_worker": 1, "cpus": 2, "address": None}
    assert doc["engine"]["name"] == "local" and doc["engine"]["workers"] == 2
    for a, b in zip(_tables(out), _tables(tmp_path / "out"), strict=True):
        assert a.schema == b.schema
        assert a.equals(b), "the engines disagree"
    assert ray_doc["comparison"] == doc["comparison"] and ray_doc["strata"] == doc["strata"]


def test_every_study_is_a_row_and_damage_is_a_row_with_its_reason(data, local_run):
    archive, _, snapshot = data
    doc, out = local_run
    studies, frames = _tables(out)
    rows = {r["patient_id"] or r["study_key"]: r for r in _rows(studies)}
    assert len(rows) == archive.studies == doc["studies"]["total"] == 6
    assert doc["studies"] == {"total": 6, "resumed": 0, "scored_now": 6, "scored": 4, "failed": 2,
                              "work_folder_taken_up": False}
    damaged = rows[archive.damaged_study]
    assert damaged["status"] == "failed" and damaged["kind"] == "dicom" and damaged["new_diagnosis"] is None
    assert "could be read" in damaged["error"] and "IM01_dorsal.dcm" in damaged["error"]
    garbage = next(r for r in rows.values() if r["kind"] == "unreadable")
    assert garbage["status"] == "failed" and garbage["patient_id"] == "" and garbage["error"].startswith("noise.dcm: ")
    by_key = {f["study_key"]: f for f in doc["failed_studies"]}
    assert set(by_key) == {damaged["study_key"], garbage["study_key"]}
    # the good study with one truncated file: scored without it, the file listed with its reason
    victim = rows["P0004"]
    skipped = json.loads(victim["skipped"])
    assert victim["status"] == "scored" and victim["skipped_files"] == 1
    assert skipped[0]["file"] == Path(archive.truncated_file).name and skipped[0]["reason"]
    # strata from the tags: rooms and months spread over the studies, the phantom scanner models
    assert {r["station"] for r in rows.values() if r["kind"] == "dicom" and r["status"] == "scored"} == {
        "US-ROOM-1", "US-ROOM-2", "US-CART-3"}
    assert {s["value"] for s in doc["strata"]["month"]} >= {"2023-01", "2023-02", "2023-03"}
    assert sum(s["studies"] for s in doc["strata"]["station"]) == 6
    # per-frame: probability, scope distance and exclusion of every frame, for both bundles
    assert frames.num_rows == sum(r["frames"] for r in rows.values()) > 0
    f = frames.to_pydict()
    assert all(isinstance(d, float) for d in f["new_scope_distance"] if d is not None)
    assert {e for e in f["new_exclusion"]} <= {None, "blank", "colour", "scope"}
    # nothing in the archive was written: the same files, sizes and times
    assert _snapshot(archive.archive) == snapshot


def test_a_study_reads_as_the_cart_reads_it(data, local_run, tmp_path):
    """``scan --dicom`` on one study's folder and the shadow's new-bundle row agree, skipped file included."""
    archive = data[0]
    _, out = local_run
    code, text = _main("scan", "--dicom", str(archive.archive / "P0004"), "--out", str(tmp_path), "--json",
                       "--no-display", *ENGINE)
    assert code == 0
    cart = json.loads(text)["patients"][0]
    row = next(r for r in _rows(_tables(out)[0]) if r["patient_id"] == "P0004")
    assert (row["new_diagnosis"], row["new_reason_code"], row["new_key_frames"]) == (
        cart["diagnosis"], cart["reason_code"], cart["key_frames"])
    assert row["new_abnormal_fraction"] == pytest.approx(cart["abnormal_fraction"], abs=1e-12)
    assert (row["frames"], row["new_frames_scored"], row["new_duplicates"]) == (
        cart["frames_seen"], cart["frames_scored"], cart["duplicates"])
    assert json.loads(row["skipped"]) == cart["skipped_files"]


def _wilson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return ci.low, ci.high


def _kappa(pairs: list[tuple[object, object]]) -> float:
    """Cohen's kappa from the contingency table: (n·trace − Σ row·col) / (n² − Σ row·col)."""
    n = len(pairs)
    cats = sorted({c for p in pairs for c in p}, key=str)
    table = [[sum(1 for a, b in pairs if a == r and b == c) for c in cats] for r in cats]
    rows = [sum(r) for r in table]
    cols = [sum(table[i][j] for i in range(len(cats))) for j in range(len(cats))]
    chance = sum(r * c for r, c in zip(rows, cols, strict=True))
    return (n * sum(table[i][i] for i in range(len(cats))) - chance) / (n * n - chance)


def test_the_report_figures_match_an_independent_computation(local_run):
    from scipy.stats import binomtest, mannwhitneyu

    doc, out = local_run
    c = doc["comparison"]
    studies, frames = (_rows(t) for t in _tables(out))
    scored = [r for r in studies if r["status"] == "scored"]

    def cat(r, m):
        d = r[f"{m}_diagnosis"]
        return f"indeterminate ({r[f'{m}_reason_code']})" if d == "indeterminate" else d

    # the change table, old (rows) × new (columns)
    counts = Counter((cat(r, "old"), cat(r, "new")) for r in scored)
    cats = c["verdicts"]["categories"]
    assert c["verdicts"]["old_by_new"] == [[counts[(a, b)] for b in cats] for a in cats]
    assert sum(counts.values()) == c["scored"] == 4
    # kappa of the verdicts and of the images' abnormal calls
    assert c["verdicts"]["kappa"] == pytest.approx(_kappa([(r["old_diagnosis"], r["new_diagnosis"]) for r in scored]))
    voted = [f for f in frames if f["new_probability"] is not None and f["old_probability"] is not None
             and not f["new_duplicate"] and not f["old_duplicate"]]
    calls = [(f["old_abnormal"], f["new_abnormal"]) for f in voted]
    assert c["images"]["compared"] == len(voted) and 0 < sum(a != b for a, b in calls)  # the old cut-off differs
    assert c["images"]["kappa"] == pytest.approx(_kappa(calls))
    assert all(f["old_abnormal"] == (f["old_probability"] > 0.3) for f in voted)  # the old bundle's own cut-off
    # McNemar, exact, on gout ↔ no gout
    b = sum(r["old_diagnosis"] == "gout" and r["new_diagnosis"] == "no gout" for r in scored)
    cc = sum(r["old_diagnosis"] == "no gout" and r["new_diagnosis"] == "gout" for r in scored)
    mc = c["discordant"]["mcnemar"]
    assert (mc["b"], mc["c"]) == (b, cc) and b + cc > 0  # verdicts do change between the bundles
    assert mc["p_value"] == pytest.approx(binomtest(b, b + cc, 0.5).pvalue) and mc["method"] == "exact binomial"
    # scope refusal of each bundle, from the frames: refused of those the guard judged (repeats once)
    for m in ("new", "old"):
        judged = [f for f in frames if f[f"{m}_scored"] and not f[f"{m}_duplicate"] and f[f"{m}_scope_distance"] is not None]
        refused = sum(bool(f[f"{m}_scope_refused"]) for f in judged)
        rate = c["scope"][m]["frame_rate"]
        assert (rate["k"], rate["n"]) == (refused, len(judged)) and rate["n"] > 0
        assert (rate["ci_low"], rate["ci_high"]) == pytest.approx(_wilson(refused, len(judged)))
    # with labels: image AUC (Mann-Whitney) and patient accuracy of each bundle
    lab = c["labels"]
    labelled = [f for f in voted if f["image_label"] is not None]
    assert lab["images"]["images"] == len(labelled) > 10
    for m in ("new", "old"):
        pos = [f[f"{m}_probability"] for f in labelled if f["image_label"] == 1]
        neg = [f[f"{m}_probability"] for f in labelled if f["image_label"] == 0]
        u = mannwhitneyu(pos, neg).statistic
        assert lab["images"][m]["auc"] == pytest.approx(u / (len(pos) * len(neg)))
        decided = [r for r in scored if r["truth"] and r[f"{m}_diagnosis"] != "indeterminate"]
        right = sum((r[f"{m}_diagnosis"] == "gout") == (r["truth"] == "gout") for r in decided)
        acc = lab["patients"][m]["accuracy"]
        assert (acc["k"], acc["n"]) == (right, len(decided))
        assert (acc["ci_low"], acc["ci_high"]) == pytest.approx(_wilson(right, len(decided)))
    # the strata add up, and each stratum's change count is its own
    for name in ("station", "month", "model", "manufacturer"):
        assert sum(s["scored"] for s in doc["strata"][name]) == 4
        for s in doc["strata"][name]:
            mine = [r for r in scored if (r[name] if name != "month" else r["month"]) == s["value"]]
            assert s["verdicts"]["changed"] == sum(r["changed"] for r in mine)
    # the report states them; its PDF has the pages; every figure is a PNG
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"{c['verdicts']['kappa']:.3f}" in html and f"exact p = {mc['p_value']:.3f}" in html
    assert "P0001" not in html and "PHANTOM" not in html  # no patient identifier in the report
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 7
    assert len(doc["outputs"]["figures"]) == 5
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in doc["outputs"]["figures"])


def _commits(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "work" / "studies").glob("*.json")}


def _identifiers(archive) -> list[str]:
    """Patient IDs, names and Study Instance UIDs of the archive: never in a log."""
    import pydicom

    found = set()
    for p in archive.archive.rglob("*.dcm"):
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - the damaged file
            continue
        found |= {str(ds.PatientID), str(ds.PatientName), str(ds.StudyInstanceUID)}
    return sorted(found)


def test_kill_9_halfway_then_a_rerun_resumes_without_scoring_again(data, local_run, tmp_path, caplog):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "gout_edge.cli", *_args(data, out, "--workers", "1")],
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while len(_commits(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker, no chance to clean up
        proc.wait()
    before = _commits(out)
    assert 3 <= len(before) < 6, "the run was not stopped halfway"
    assert not (out / "studies.parquet").exists()

    caplog.set_level("INFO")
    code, text = _main(*_args(data, out, "--workers", "2"))
    assert code == 0
    doc = validate("shadow", text)
    # the logs of both runs name studies by key and files by base name: no patient identifier
    said = log.read_text(errors="replace") + "\n".join(r.getMessage() for r in caplog.records)
    assert "not scored" in said and "study " in said
    leaked = [i for i in _identifiers(data[0]) if i and i in said]
    assert not leaked, leaked
    assert doc["studies"]["resumed"] == len(before) and doc["studies"]["scored_now"] == 6 - len(before)
    assert doc["studies"]["work_folder_taken_up"] is True
    after = _commits(out)
    assert {k: after[k] for k in before} == before  # finished studies were not scored again
    for a, b in zip(_tables(local_run[1]), _tables(out), strict=True):
        assert a.equals(b)  # the same tables as a run that never stopped
    assert doc["comparison"] == local_run[0]["comparison"]


def test_a_worker_that_dies_on_a_study_makes_it_a_failed_row(data, tmp_path):
    """A native decoder crash kills a worker: the study is a row, the others are scored."""
    from gout_edge.edge_runtime.inference.loading import default_bundle_path
    from gout_edge.shadow.archive import discover
    from gout_edge.shadow.engines import WORKER_DIED, run_local
    from gout_edge.shadow.study import ModelSpec

    archive = data[0]
    found, _ = discover(archive.archive)
    refs = [r for r in found.studies if r.patient_id in ("P0001", "P0002", "P0003")]
    spec = ModelSpec("new", str(default_bundle_path()), "openvino", "int8")
    records: list[dict] = []
    run_local(refs, found.root, [spec], 2, 1, records.append, score=crashing_score)
    by_patient = {r.key: r.patient_id for r in refs}
    status = {by_patient[r["key"]]: (r["status"], r["error"]) for r in records}
    assert status == {"P0001": ("scored", None), "P0002": ("failed", WORKER_DIED), "P0003": ("scored", None)}


def test_an_index_table_archive_runs_each_patient_as_evaluate_does(data, tmp_path):
    """``--archive index.csv``: patients are the studies, their images run as ``exam_tallies`` runs them."""
    from gout_edge.calibration.calibrate import exam_tallies
    from gout_edge.calibration.index import read_index
    from gout_edge.edge_runtime.inference.loading import open_bundle
    from gout_edge.edge_runtime.inference.scoring import Scorer

    archive = data[0]
    table = read_index(archive.labels).select(["P0001", "P0003"])
    csv = tmp_path / "two.csv"
    lines = archive.labels.read_text().splitlines()
    csv.write_text("\n".join([lines[0], *[ln for ln in lines[1:] if ln.split(",")[0] in ("P0001", "P0003")]]) + "\n")
    (tmp_path / "dicom").symlink_to(archive.archive)
    code, text = _main("shadow", "--archive", str(csv), "--against", "int8", "--out", str(tmp_path / "out"),
                       "--no-report", "--workers", "1", *ENGINE, "--json")
    assert code == 0
    doc = validate("shadow", text)
    assert doc["archive"]["kind"] == "index" and doc["outputs"]["report_html"] is None
    rows = {r["patient_id"]: r for r in _rows(_tables(tmp_path / "out")[0])}
    bundle = open_bundle()
    for rec, tally in exam_tallies(table, Scorer(bundle, "openvino", "int8", threads=1)):
        d = tally.decide(bundle.manifest)
        row = rows[rec.patient_id]
        assert (row["new_diagnosis"], row["new_reason_code"], row["new_key_frames"]) == (
            d.diagnosis.value, d.reason.code.value, d.key_frames)
        assert row["old_diagnosis"] == row["new_diagnosis"]  # the same bundle at the same precision


def test_errors_say_what_to_do_with_their_exit_codes(data, local_run, tmp_path, capsys):
    archive = data[0]
    base = ["shadow", "--against", "int8", "--no-report"]
    assert main([*base, "--archive", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o1")]) == 3
    assert "not found" in capsys.readouterr().err
    assert main([*base, "--archive", str(archive.archive), "--out", str(tmp_path / "o2"), "--address", "auto"]) == 2
    assert "--engine ray" in capsys.readouterr().err
    assert main([*base, "--archive", str(archive.archive), "--out", str(archive.archive / "out")]) == 2
    assert "inside the archive" in capsys.readouterr().err
    assert main(["shadow", "--against", "fp16", "--archive", str(archive.archive), "--out", str(tmp_path / "o3")]) == 2
    # a rerun into a finished run's folder with another old bundle is refused, not mixed in
    assert main(["shadow", "--archive", str(archive.archive), "--against", "int8", "--out", str(local_run[1]),
                 *ENGINE]) == 2
    assert "other bundles" in capsys.readouterr().err
    assert main([*base, "--archive", str(archive.archive), "--out", str(tmp_path / "o4"),
                 "--bundle", str(tmp_path / "no-bundle")]) == 4
    assert not (archive.archive / "out").exists()


def test_the_kappa_of_the_library_on_known_tables():
    """Cohen's kappa on textbook tables, and where it is undefined."""
    from gout_edge.shadow.metrics import cohen_kappa

    # 50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no → p_o 0.7, p_e 0.5 → κ 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == 1.0
    assert math.isnan(cohen_kappa(["gout"] * 3, ["gout"] * 3)) and math.isnan(cohen_kappa([], []))


@pytest.mark.parametrize("line", [
    "import gout_edge.phantom\n",  # the simulator is not the hospital's
    "def f():\n    import torch\n",  # nor the model owner's torch side, even inside a function
    "from gout_edge.commands import scan\n",  # commands sit above every library
])
def test_shadow_reaching_the_wrong_way_breaks_a_contract(tmp_path, line):
    import importlib.util

    spec = importlib.util.spec_from_file_location("lint_imports", Path(__file__).resolve().parents[1] / "scripts" / "lint-imports.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tree = script.assemble(tmp_path)
    (tree / "gout_edge" / "shadow" / "bad_idea.py").write_text(line)
    result = script.lint(tree)
    assert result.returncode == 1 and "BROKEN" in result.stdout and "shadow" in result.stdout
