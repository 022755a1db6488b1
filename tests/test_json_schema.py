"""Issue 20, "one answer shape": every ``--json`` document fits the JSON Schema published for its
command under ``docs/schemas/``, checked here on the real output of the commands (the demo bundle:
no export); ``scan --json`` has the same top-level keys for one patient and for two. ``export`` and
``train`` are checked where their tests already run them (tests/test_cli.py, tests/test_train.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import typer
from dicom_tools import Node
from support.cli import run_cli
from support.json_schemas import SCHEMAS, schema_path, validate

from gout_edge.cli import COMMANDS, app
from gout_edge.edge_runtime.inference.loading import default_bundle_path
from gout_edge.edge_runtime.pipeline.results import SCAN_FORMAT, SCAN_FORMAT_VERSION

ENGINE = ["--backend", "onnxruntime", "--precision", "int8"]
QUIET = ["--no-display"]

pytestmark = pytest.mark.usefixtures("no_device_key")  # the unsigned demo bundle opens; state files stay here


_main = run_cli


@pytest.fixture(scope="module")
def demo_scan(tmp_path_factory) -> dict:
    """``scan --demo --json``: one patient, with its session's DICOM results."""
    out = tmp_path_factory.mktemp("schema-demo-scan")
    code, text = _main("scan", "--demo", "--max-frames", "6", "--out", str(out), "--json", *ENGINE, *QUIET)
    assert code == 0
    return json.loads(text)


def _json_commands() -> set[str]:
    group = typer.main.get_command(app)
    return {name for name in COMMANDS
            if any("--json" in p.opts for p in group.commands[name].params)}


def test_every_command_with_json_publishes_a_schema_that_pins_its_top_level():
    commands = _json_commands()
    assert "scan" in commands and len(commands) >= 10
    assert {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")} == commands
    for command in commands:
        schema = json.loads(schema_path(command).read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", command
        for shape in schema.get("oneOf", [schema]):  # bench and phantom have two documents each
            assert shape["type"] == "object" and shape["required"], command
            assert set(shape["required"]) <= set(shape["properties"]), command
            untyped = [k for k in shape["required"] if not set(shape["properties"][k]) & {"type", "const", "enum",
                                                                                      "oneOf", "$ref"}]
            assert not untyped, (command, untyped)


def test_scan_has_the_same_top_level_keys_for_one_and_for_two_patients(phantom_dir, demo_scan, tmp_path):
    one = validate("scan", demo_scan)
    code, text = _main("scan", "--images", str(phantom_dir / "images"), "--out", str(tmp_path / "scans"), "--json",
                       *ENGINE, *QUIET)
    assert code == 0
    two = validate("scan", text)
    assert len(one["patients"]) == 1 and len(two["patients"]) == 2
    assert list(one) == list(two)  # the same keys, in the same order
    assert "diagnosis" not in one and "diagnosis" not in two  # answers live in patients, even for one
    assert one["format"] == two["format"] == SCAN_FORMAT and one["format_version"] == SCAN_FORMAT_VERSION == 2
    assert one["phantom_diagnosis"] in ("gout", "no gout") and two["phantom_diagnosis"] is None
    assert one["sent"] is None and two["source"]["kind"] == "images"
    assert [p["patient_id"] for p in two["patients"]] == ["P0001", "P0002"]
    for p in [*one["patients"], *two["patients"]]:  # each entry: its report.json, less three keys
        report = json.loads(Path(p["report"]).read_text(encoding="utf-8"))
        assert p == {k: v for k, v in report.items() if k not in ("format", "bundle", "key_frame_list")}


def test_a_document_of_the_old_shape_is_refused_by_the_schema(demo_scan):
    old = {k: v for k, v in demo_scan.items() if k not in ("format", "format_version")}
    old.update(diagnosis="gout", scored=3)  # version 1: one patient's answer at the top level
    with pytest.raises(AssertionError, match="diagnosis"):
        validate("scan", old)


def test_info_keygen_and_verify(tmp_path):
    code, text = _main("info", "--json")
    assert code == 0 and validate("info", text)["bundle"]["path"] == str(default_bundle_path())
    code, text = _main("keygen", "--out", str(tmp_path / "owner"), "--json")
    assert code == 0 and Path(validate("keygen", text)["public_key"]).is_file()
    record = tmp_path / "record.json"
    code, text = _main("verify", "--backends", "onnxruntime", "--precision", "int8", "--latency-frames", "0",
                       "--out", str(record), "--json")
    assert code == 0
    assert validate("verify", text) == json.loads(record.read_text(encoding="utf-8"))  # what --out holds
    code, text = _main("verify", "--bundle", str(tmp_path / "nope"), "--out", str(tmp_path / "refused.json"), "--json")
    assert code == 4 and validate("verify", text)["status"] == "refused"


def test_phantom_patients_and_out_of_scope(tmp_path):
    code, text = _main("phantom", "--out", str(tmp_path / "data"), "--patients", "1", "--format", "png",
                       "--no-contact-sheet", "--json")
    assert code == 0 and validate("phantom", text)["n_patients"] == 1
    code, text = _main("phantom", "--out", str(tmp_path / "oos"), "--out-of-scope", "--per-category", "1",
                       "--format", "png", "--no-contact-sheet", "--json")
    assert code == 0 and validate("phantom", text)["n_images"] > 0


def test_evaluate_and_calibrate(phantom_dir, tmp_path):
    data = phantom_dir
    code, text = _main("evaluate", "--data", str(data / "index.csv"), "--out", str(tmp_path / "evaluation"), "--json",
                       *ENGINE)
    assert code == 0 and validate("evaluate", text)["data"]["patients"] == 2
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)  # calibrate rewrites the manifest: never the installed one
    code, text = _main("calibrate", "--bundle", str(bundle), "--data", str(data / "index.csv"), "--folds", "0",
                       "--out", str(tmp_path / "calibration"), "--json", *ENGINE)
    assert code == 0 and len(validate("calibrate", text)["patients"]) == 2


def test_bench_and_bench_isa():
    fast = ["--backends", "onnxruntime", "--precision", "int8", "--frames", "2", "--warmup", "0", "--threads", "1"]
    code, text = _main("bench", *fast, "--no-cold-start", "--no-torch", "--json")
    assert code in (0, 1)  # 1: a budget missed on this machine; the document is printed either way
    assert validate("bench", text)["passed"] is (code == 0)
    code, text = _main("bench", *fast, "--isa", "avx2", "--json")
    assert code in (0, 1) and [r["isa"] for r in validate("bench", text)["runs"]] == ["native", "AVX2"]


def test_send_to_a_listening_node_and_what_the_node_says_when_stopped(demo_scan, tmp_path):
    node = Node(tmp_path / "node", "--quiet-period", "300", "--json")  # studies wait: only what was received
    try:
        node.start()
        session = Path(demo_scan["patients"][0]["session_dir"])
        code, text = _main("send", str(session), "--to", f"127.0.0.1:{node.port}:GOUT_EDGE", "--json")
        assert code == 0
        sent = validate("send", text)
        assert sent["stored"] == sent["objects"] == len(demo_scan["patients"][0]["dicom"]) > 0
    finally:
        assert node.stop() == 0
    log = node.log()
    summary = validate("listen", log[log.rindex("\n{\n") + 1:])  # one document on stdout when stopped
    assert summary["received"] == sent["stored"] and summary["pending_studies"] == 1
