"""The CLI through typer's test runner and through ``main`` (exit codes of docs/design.md §8)."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from support.bundles import SMALL
from support.json_schemas import validate
from typer.testing import CliRunner

from gout_edge.cli import COMMANDS, app, main
from gout_edge.export.model import GoutResNet

runner = CliRunner()


def test_every_command_has_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0 and "--json" in sub.output, name


def test_info_json_describes_bundle_and_device(small_bundle):
    result, _ = small_bundle
    out = runner.invoke(app, ["info", "--bundle", str(result.bundle), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["bundle"]["manifest"]["model"]["blocks"] == 3
    assert "onnxruntime" in doc["device"]["backends"]
    assert isinstance(doc["device"]["features"], list)


def test_info_human_table(small_bundle):
    result, _ = small_bundle
    out = runner.invoke(app, ["info", "--bundle", str(result.bundle)])
    assert out.exit_code == 0, out.output
    assert "not calibrated" in out.stdout and "onnx-fp32" in out.stdout and "clinical" in out.stdout


def test_info_on_a_tampered_bundle_exits_4_naming_the_file(small_bundle, tmp_path, capsys):
    result, _ = small_bundle
    copy = tmp_path / "b"
    shutil.copytree(result.bundle, copy)
    with open(copy / "model.fp32.onnx", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert main(["info", "--bundle", str(copy)]) == 4
    err = capsys.readouterr().err
    assert "model.fp32.onnx" in err and "Traceback" not in err


@pytest.mark.slow
def test_export_command_writes_a_bundle(tmp_path, toy_csv):
    """The command's wiring, at the tests' small input (``--input-size``: a plain state_dict records
    no training size, so the paper's 320 × 700 would be the default) with the toy data set as its
    calibration images (``--calib``) instead of 24 phantom patients."""
    torch.save(GoutResNet(2).state_dict(), tmp_path / "m.pt")
    out = runner.invoke(app, ["export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "b"), "--no-int8",
                              "--calib", str(toy_csv), "--input-size", f"{SMALL.height}x{SMALL.width}", "--json"])
    assert out.exit_code == 0, out.output
    doc = validate("export", out.stdout)  # docs/schemas/export.schema.json
    assert doc["blocks"] == 2 and doc["parity"]["logits_max_abs_diff"] <= 1e-4
    assert (tmp_path / "b" / "manifest.json").is_file()
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["input"]["height"] == SMALL.height and toy_csv.name in manifest["reference"]["source"]
    # Exporting again into the same directory is refused unless --overwrite.
    assert main(["export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "b")]) == 2


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_export_exit_codes(tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump(_Evil(), fh)
    assert main(["export", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "o")]) == 3
    captured = capsys.readouterr()
    assert "could execute code" in captured.err and "pwned" not in captured.out
    torch.save(GoutResNet(3).state_dict(), tmp_path / "m.pt")
    assert main(["export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "o2"), "--blocks", "2"]) == 3
    assert "--blocks 2 does not match" in capsys.readouterr().err
    assert main(["export"]) == 2  # missing argument: usage
