"""Issue 21, "the right bundle for the device": which shipped bundle is the default on which CPU
(VNNI → the paper's model; no VNNI → the compact one when it is shipped), what the commands say
about it, and the latency hint that names VNNI and times the other shipped bundle here.

The rule takes the CPU's features and the shipped bundles as arguments, so both CPU classes are
asked on any machine; a "shipped compact bundle" is a copy of the session's small bundle in
tmp_path, passed explicitly (nothing is written into the package)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from support.cli import run_cli
from support.json_schemas import validate

from gout_edge.cli import main
from gout_edge.edge_runtime.field.latency import LatencyHint, ShippedTiming, latency_hint
from gout_edge.edge_runtime.inference.device import has_vnni, int8_class, isa_cap
from gout_edge.edge_runtime.inference.loading import default_bundle_path
from gout_edge.edge_runtime.inference.shipped import (
    Shipped,
    default_bundle,
    is_shipped_path,
    shipped_bundles,
    shipped_folder,
)
from gout_edge.manifest import MANIFEST_NAME, read_manifest, write_manifest

pytestmark = pytest.mark.usefixtures("no_device_key")

ZEN4 = ("AVX2", "FMA", "AVX-512F", "AVX-512 VNNI", "AVX-512 BF16")  # VNNI: the paper's model meets its budget
ALDER_LAKE = ("AVX2", "FMA", "AVX-VNNI")  # VNNI without AVX-512
CART = ("AVX2", "FMA")  # the budgets' reference cart: AVX2 without VNNI
SKYLAKE_X = ("AVX2", "FMA", "AVX-512F")  # AVX-512 without VNNI
BOTH = {Shipped.PAPER: Path("/shipped/paper"), Shipped.COMPACT: Path("/shipped/compact")}
PAPER_ONLY = {Shipped.PAPER: Path("/shipped/paper")}
NO_CAP: dict[str, str] = {}


# ------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("features", [ZEN4, ALDER_LAKE])
def test_a_cpu_with_vnni_gets_the_papers_model_even_when_the_compact_one_is_shipped(features):
    chosen = default_bundle(features, BOTH, NO_CAP)
    assert chosen.name is Shipped.PAPER and chosen.path == BOTH[Shipped.PAPER]
    assert "VNNI" in chosen.why and "meets its latency budget" in chosen.why


@pytest.mark.parametrize("features", [CART, SKYLAKE_X, ()])
def test_a_cpu_without_vnni_gets_the_compact_bundle_when_it_is_shipped(features):
    chosen = default_bundle(features, BOTH, NO_CAP)
    assert chosen.name is Shipped.COMPACT and chosen.path == BOTH[Shipped.COMPACT]
    assert "VNNI" in chosen.why and "2× slower" in chosen.why and "made for this class of cart" in chosen.why


def test_without_the_compact_bundle_the_papers_model_stays_the_default_and_the_why_says_so():
    chosen = default_bundle(CART, PAPER_ONLY, NO_CAP)
    assert chosen.name is Shipped.PAPER and chosen.path == PAPER_ONLY[Shipped.PAPER]
    assert "AVX2 without VNNI" in chosen.why and "compact bundle" in chosen.why and "not installed" in chosen.why
    assert default_bundle(ZEN4, PAPER_ONLY, NO_CAP).name is Shipped.PAPER


def test_with_nothing_shipped_the_default_is_the_papers_folder_and_the_why_asks_for_a_bundle():
    chosen = default_bundle(ZEN4, {}, NO_CAP)
    assert chosen.path == shipped_folder(Shipped.PAPER) and "--bundle" in chosen.why


@pytest.mark.parametrize(("features", "cap", "expected"), [
    (ZEN4, "AVX512_CORE", Shipped.COMPACT),  # as `bench --isa AVX512_CORE` runs its children
    (ZEN4, "avx2", Shipped.COMPACT),
    (ZEN4, "AVX2_VNNI", Shipped.COMPACT),  # this CPU has no AVX-VNNI: the cap leaves it AVX2
    (ZEN4, "AVX512_CORE_VNNI", Shipped.PAPER),
    (ZEN4, "ALL", Shipped.PAPER),
    (ZEN4, "no such isa", Shipped.PAPER),  # oneDNN ignores what it does not know
    (ALDER_LAKE, "AVX2", Shipped.COMPACT),
    (ALDER_LAKE, "AVX2_VNNI", Shipped.PAPER),
])
def test_a_onednn_cap_that_takes_vnni_away_counts_as_a_cpu_without_it(features, cap, expected):
    environ = {"ONEDNN_MAX_CPU_ISA": cap}
    chosen = default_bundle(features, BOTH, environ)
    assert chosen.name is expected
    assert has_vnni(features, isa_cap(environ)) is (expected is Shipped.PAPER)
    if expected is Shipped.COMPACT:
        assert "ONEDNN_MAX_CPU_ISA" in chosen.why and cap.upper() in chosen.why


def test_the_process_cap_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert default_bundle(ZEN4, BOTH).name is Shipped.COMPACT
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert default_bundle(ZEN4, BOTH).name is Shipped.PAPER


# -------------------------------------------------------------------------------- what is shipped


def test_shipped_bundles_are_those_whose_manifest_is_installed_and_the_default_path_follows_the_rule():
    shipped = shipped_bundles()
    assert set(shipped) <= set(Shipped)
    assert all((path / MANIFEST_NAME).is_file() and path == shipped_folder(name) for name, path in shipped.items())
    assert shipped_folder(Shipped.PAPER) != shipped_folder(Shipped.COMPACT)
    assert default_bundle_path() == default_bundle().path


def test_neither_shipped_bundle_may_be_written_into(tmp_path, capsys):
    from gout_edge.commands._options import demo_bundle_refusal, is_installed_bundle

    for name in Shipped:  # installed or not: the package's folders
        assert is_shipped_path(shipped_folder(name)) and is_installed_bundle(shipped_folder(name))
    assert is_installed_bundle(None) and not is_installed_bundle(tmp_path)
    compact = shipped_folder(Shipped.COMPACT)
    assert f"cp -r {compact} " in str(demo_bundle_refusal("calibrate", "calibrate writes the threshold", compact))
    index = tmp_path / "index.csv"
    index.write_text("patient_id,path,label\n")
    for args in (["calibrate", "--data", str(index), "--bundle", str(compact)],
                 ["evaluate", "--data", str(index), "--bundle", str(compact), "--record"]):
        assert main(args) == 2
        assert "cp -r" in capsys.readouterr().err


# ------------------------------------------------------------------------- what the commands say


def test_info_json_reports_the_default_bundle_and_why_and_bundle_suppresses_it(tmp_path):
    code, text = run_cli("info", "--json")
    doc = validate("info", text)
    chosen = default_bundle()
    assert code == 0 and doc["default_bundle"] == {"name": chosen.name.value, "path": str(chosen.path), "why": chosen.why}
    assert doc["default_bundle"]["why"]
    code, text = run_cli("info", "--json", "--bundle", str(default_bundle_path()))
    assert code == 0 and validate("info", text)["default_bundle"] is None


def test_info_says_the_default_on_stderr_only_without_bundle(capsys):
    assert main(["info"]) == 0
    captured = capsys.readouterr()
    (line,) = [line for line in captured.err.splitlines() if line.startswith("default bundle:")]
    assert default_bundle().why in line and "default bundle" not in captured.out
    assert main(["info", "--bundle", str(default_bundle_path())]) == 0
    assert "default bundle" not in capsys.readouterr().err


# -------------------------------------------------------------------------------- the latency hint


@pytest.mark.parametrize("features", [(), CART, SKYLAKE_X, ALDER_LAKE, ZEN4, (*ZEN4, "AMX")])
def test_where_the_cpu_stands_names_vnni_and_never_credits_bf16(features):
    sentence = int8_class(features)
    assert "VNNI" in sentence and "BF16" not in sentence
    assert ("2× faster" in sentence) == has_vnni(features)


def test_the_verify_hint_asks_for_no_thread_cap():
    from gout_edge.commands.verify import _WHY

    assert "not below the cores" in _WHY["latency"]


@pytest.fixture
def shipped_pair(small_bundle, tmp_path):
    """Two real bundles standing for the shipped ones: copies of the session's small bundle, the
    "paper" one with a budget nothing meets; ``make(compact_budget_ms)`` sets the compact one's."""
    def make(compact_budget_ms: float) -> dict[Shipped, Path]:
        out = {}
        for name, budget in ((Shipped.PAPER, 1e-6), (Shipped.COMPACT, compact_budget_ms)):
            copy = tmp_path / name.value
            shutil.copytree(small_bundle[0].bundle, copy, dirs_exist_ok=True)
            m = read_manifest(copy)
            write_manifest(copy, dataclasses.replace(m, budgets=dataclasses.replace(m.budgets, end_to_end_p50_ms=budget)))
            out[name] = copy
        return out
    return make


def test_the_hint_times_the_other_shipped_bundle_here_and_names_the_command(shipped_pair):
    shipped = shipped_pair(1e6)
    hint = latency_hint(shipped[Shipped.PAPER], CART, shipped, frames=4, threads=1)
    (timing,) = hint.timings
    assert timing.name is Shipped.COMPACT and timing.frames == 4 and timing.p50_ms > 0 and timing.within
    text = hint.text("verify")
    assert "AVX2 without VNNI" in text
    assert f"compact bundle measured {timing.p50_ms:.1f} ms p50 here" in text
    assert f"within the {1e6:g} ms budget — gout-edge verify --bundle {shipped[Shipped.COMPACT]}" in text
    json.dumps(hint.to_dict())


def test_the_hint_says_when_no_shipped_bundle_meets_the_budget(shipped_pair):
    shipped = shipped_pair(1e-6)
    hint = latency_hint(shipped[Shipped.PAPER], ZEN4, shipped, frames=2, threads=1)
    assert not hint.timings[0].within
    assert "No other shipped bundle meets the budget" in hint.text("bench") and "--bundle" not in hint.text("bench")


def test_a_bundle_of_ones_own_gets_no_shipped_alternative(shipped_pair, tmp_path, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    shipped = shipped_pair(1e6)
    assert latency_hint(tmp_path / "mine", CART, shipped).timings == ()
    paper_only = {Shipped.PAPER: shipped[Shipped.PAPER]}
    assert "compact bundle, made for carts without VNNI, is not installed" in latency_hint(
        shipped[Shipped.PAPER], CART, paper_only).text("verify")
    assert latency_hint(shipped[Shipped.PAPER], ZEN4, paper_only).note == ""
    assert LatencyHint(int8_class(CART)).text("verify").startswith("This CPU has AVX2 without VNNI")
    broken = ShippedTiming(Shipped.COMPACT, tmp_path, error="cannot be opened")
    assert "cannot be opened" in LatencyHint("x", (broken,)).text("verify")


def test_bench_json_carries_the_hint_when_the_latency_budget_is_missed(shipped_pair):
    bundle = shipped_pair(1e6)[Shipped.PAPER]  # not a shipped bundle of this install: no alternative timed
    code, text = run_cli("bench", "--bundle", str(bundle), "--backends", "onnxruntime", "--precision", "fp32",
                         "--frames", "2", "--warmup", "0", "--threads", "1", "--no-cold-start", "--no-torch", "--json")
    doc = validate("bench", text)
    assert code == 1 and doc["default_bundle"] is None
    assert "VNNI" in doc["latency_hint"]["cpu"] and doc["latency_hint"]["shipped"] == []
