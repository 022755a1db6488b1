"""One CLI: every command names the bundle with ``--bundle`` (demo bundle by default), typer checks
numbers and choices (exit 2, naming the option), help reads well at 80 columns, and default
outputs go to the working folder, never into the installed package."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gout_edge.cli import COMMANDS, app, main
from gout_edge.commands._options import Backend, Precision
from gout_edge.edge_runtime.inference.loading import default_bundle_path

GROUP = typer.main.get_command(app)
BUNDLE_COMMANDS = ("info", "calibrate", "evaluate", "verify", "scan", "bench")
# phantom checks --patients itself (a usage error naming the option, exit 2: tests/test_phantom.py)
UNBOUNDED_OK = {("phantom", "--patients")}


def _options(command: str) -> dict[str, object]:
    return {opt: p for p in GROUP.commands[command].params for opt in p.opts if opt.startswith("--")}


def _required(command: str) -> list[str]:
    """Placeholder values for a command's required parameters (never read: parsing fails first)."""
    args: list[str] = []
    for p in GROUP.commands[command].params:
        if p.required:
            args += ["x"] if p.param_type_name == "argument" else [p.opts[0], "x"]
    return args


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ options


THREADS_COMMANDS = sorted(name for name in COMMANDS if "--threads" in _options(name))


def test_the_commands_with_threads_are_the_expected_ones():
    assert set(THREADS_COMMANDS) == {"export", "train", "calibrate", "evaluate", "verify", "scan", "bench", "shadow"}


@pytest.mark.parametrize("command", THREADS_COMMANDS)
def test_threads_below_1_is_a_usage_error_naming_the_option(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for value in ("-1", "0"):
        code, err = _run(capsys, [command, *_required(command), "--threads", value])
        assert code == 2 and "--threads" in err and "Traceback" not in err, (command, value, err)
    assert not list(tmp_path.iterdir())  # nothing written before the options are checked


def test_every_number_option_is_bounded():
    loose = []
    for name in COMMANDS:
        for opt, p in _options(name).items():
            kind = p.type_descriptor.annotation
            if kind in (int, float) and not p.type_descriptor.is_ranged and p.callback is None:
                loose.append((name, opt))
    assert set(loose) <= UNBOUNDED_OK, loose


@pytest.mark.parametrize("command", BUNDLE_COMMANDS)
def test_every_bundle_command_takes_bundle_dir(command):
    option = _options(command)["--bundle"]
    assert option.metavar == "DIR" and option.default is None and not option.required
    assert not [p for p in GROUP.commands[command].params if p.param_type_name == "argument" and not p.hidden]


@pytest.mark.parametrize("command", ["info", "verify", "bench", "evaluate", "scan"])
def test_a_missing_bundle_is_a_bundle_error(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = {"evaluate": ["--data", str(tmp_path / "index.csv")], "scan": ["--demo"]}.get(command, [])
    code, err = _run(capsys, [command, "--bundle", str(tmp_path / "nope"), *extra])
    assert code == 4 and "nope" in err and "Traceback" not in err, err


def test_the_choice_enums_match_the_runtime():
    from gout_edge.edge_runtime.inference.backends import PRECISIONS, REGISTRY

    assert [b.value for b in Backend] == ["auto", *REGISTRY]
    assert {p.value for p in Precision} == {"auto", *PRECISIONS}


@pytest.mark.parametrize("command", ["calibrate", "evaluate", "scan"])
def test_bad_backend_or_precision_exits_2(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for option, value in (("--backend", "tensorrt"), ("--precision", "int4")):
        code, err = _run(capsys, [command, *_required(command), option, value])
        assert code == 2 and option in err and value in err and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["verify", "bench"])
def test_bad_comma_lists_exit_2(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for option, value in (("--backends", "onnxruntime,tensorrt"), ("--precision", "int4")):
        code, err = _run(capsys, [command, option, value])
        assert code == 2 and option in err and value.split(",")[-1] in err, err
    assert not list(tmp_path.iterdir())  # verify writes no record for a usage error


def test_the_old_positional_bundle_still_works_with_a_note(capsys):
    bundle = str(default_bundle_path())
    code, err = _run(capsys, ["info", bundle, "--json"])
    assert code == 0 and "deprecated" in err and "--bundle" in err
    code, err = _run(capsys, ["info", bundle, "--bundle", "/elsewhere", "--json"])
    assert code == 2 and "two bundles" in err


# ------------------------------------------------------------------ help


def _help(args: list[str]) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_help_reads_well_at_80_columns():
    top = _help([])
    listed = top.split("Commands:")[1].strip().splitlines()
    assert [line.split()[0] for line in listed] == list(COMMANDS)  # one line per command
    assert not any(line.rstrip().endswith("...") for line in listed)  # nothing cut
    for args in ([], *([name] for name in COMMANDS)):
        text = _help(args)
        assert max(len(line) for line in text.splitlines()) <= 80, args
        assert "<bool>" not in text and "Traceback" not in text, args
        assert "[[" not in text and "BUNDLE]" not in text, args  # the deprecated positional is hidden
    assert "--bundle DIR" in _help(["verify"]) and "--threads N" in _help(["bench"])
    assert "-h, --help" in top


# ------------------------------------------------------------------ nothing written into the package


@pytest.mark.slow
def test_default_outputs_go_to_the_working_folder_and_the_package_stays_unchanged(capsys, tmp_path, monkeypatch):
    demo = default_bundle_path()
    if not demo.is_dir():
        pytest.skip("the demo bundle is not installed")
    package = Path(str(resources.files("gout_edge")))

    def package_files() -> set[str]:
        return {str(p.relative_to(package)) for p in package.rglob("*") if "__pycache__" not in p.parts}

    bundle_before, package_before = _files(demo), package_files()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GOUT_EDGE_PUBLIC_KEY", raising=False)
    code, err = _run(capsys, ["phantom", "--out", "data", "--patients", "2", "--format", "png", "--no-contact-sheet"])
    assert code == 0, err
    index = str(tmp_path / "data" / "index.csv")

    capsys.readouterr()
    assert main(["evaluate", "--data", index, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"]
    (report,) = (tmp_path / "gout-edge-reports").iterdir()
    assert report.name.startswith(f"evaluation-{default_bundle_path().name}-") and (report / "evaluation.json").is_file()

    code, err = _run(capsys, ["calibrate", "--data", index])
    assert code == 2 and "cp -r" in err and str(demo) in err and "--bundle" in err
    code, err = _run(capsys, ["calibrate", "--data", index, "--bundle", str(demo)])  # the same, named
    assert code == 2 and "cp -r" in err
    code, err = _run(capsys, ["evaluate", "--data", index, "--record"])
    assert code == 2 and "cp -r" in err

    code, err = _run(capsys, ["verify", "--backends", "onnxruntime", "--latency-frames", "0"])
    assert code == 0, err
    assert len(list(tmp_path.glob("gout-edge-verification-*.json"))) == 1

    code, err = _run(capsys, ["scan", "--demo", "--max-frames", "3", "--json"])
    assert code == 0, err
    assert (tmp_path / "scans").is_dir()

    assert _files(demo) == bundle_before
    assert package_files() == package_before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "data", "gout-edge-reports", next(p.name for p in tmp_path.glob("gout-edge-verification-*")), "scans"]
    assert len(list((tmp_path / "gout-edge-reports").iterdir())) == 1  # the refusals wrote no report


def test_a_report_folder_inside_the_package_is_refused(capsys, tmp_path):
    package = Path(str(resources.files("gout_edge")))
    code, err = _run(capsys, ["evaluate", "--data", str(tmp_path / "index.csv"), "--out", str(package / "reports")])
    assert code == 2 and "package" in err
    assert not (package / "reports").exists()
