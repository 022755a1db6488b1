"""The ``gout-edge`` command: a typer app whose subcommands live in ``gout_edge.commands``.

Each command module exposes ``register(app)`` and imports its heavy dependencies (torch, onnx,
OpenVINO) inside the command body, so ``gout-edge info`` on a cart never loads torch. Expected
failures (``GoutEdgeError``) become one message on stderr and the exit code of docs/design.md §8.
Anything else is a bug: one line on stderr naming a crash file that holds the traceback (without
local variables, with command-line values and folder paths scrubbed), and exit status 70.
Third-party libraries (pydicom, NNCF, Pillow) never print tracebacks or warnings on the terminal.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import time
import traceback
import warnings
from pathlib import Path

import typer

from gout_edge._io import crash_folder
from gout_edge._version import __version__

from .errors import INTERNAL_ERROR_EXIT, GoutEdgeError

COMMANDS = ("info", "export", "keygen", "phantom", "train", "calibrate", "evaluate", "verify", "scan", "bench",
            "listen", "send", "shadow")

app = typer.Typer(
    name="gout-edge",
    help=(
        "Ultrasound CNN for gouty arthritis of the first MTP joint, at the bedside "
        "(export, INT8, CAM, per-patient vote). Research software: models trained on "
        "synthetic phantoms are not for clinical use."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: wraps to the terminal (at most 80 columns) without rich's option table,
    # which squeezes the help text into a narrow column and shows a type for every flag.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gout-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet_libraries(verbose)


class _NoTracebacks(logging.Filter):
    """Drops a record's traceback (``exc_info``) — always for other libraries' loggers, and for
    gout-edge's own unless ``--verbose`` — so a log line stays one line on a clinician's screen."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not (self.verbose and record.name.startswith("gout_edge")):
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


def quiet_libraries(verbose: bool = False) -> None:
    """What this process lets third-party libraries print: pydicom's log (it logs a traceback for
    every decoder plugin that fails) only when critical, none of its warnings about invalid values
    (they quote the values, which can be patient data), no tracebacks from any library's logger."""
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    logging.getLogger("nncf").setLevel(logging.WARNING if verbose else logging.ERROR)
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    try:
        from pydicom import config

        config.settings.reading_validation_mode = config.IGNORE
    except ImportError:  # pragma: no cover - pydicom is a dependency
        pass
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _NoTracebacks) for f in handler.filters):
            handler.addFilter(_NoTracebacks(verbose))


for _name in COMMANDS:
    importlib.import_module(f"{__package__}.commands.{_name}").register(app)


_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(/[^\s'\"/:]+)+/([^\s'\"/:]*)")


def crash_report(exc: BaseException, argv: list[str]) -> str:
    """The text of a crash file: versions, the subcommand and option names (values left out: they
    can be patient IDs or paths), and the traceback without local variables, its messages scrubbed
    of the command line's values and of folder paths."""
    import platform

    values = sorted({a for a in argv if a and not a.startswith("-")} - set(COMMANDS), key=len, reverse=True)
    options = [a.split("=", 1)[0] for a in argv if a.startswith("-")]
    command = next((a for a in argv if a in COMMANDS), "?")

    def scrub(line: str) -> str:
        for value in values:
            if len(value) >= 2:
                line = line.replace(value, "<value>")
        return _ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(2), line)

    lines = [
        f"gout-edge {__version__} internal error, {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        f"python {platform.python_version()} on {platform.platform()}",
        f"command: gout-edge {command} (options: {' '.join(options) or 'none'}; their values are left out)",
        "",
    ]
    te = traceback.TracebackException.from_exception(exc, capture_locals=False)
    for chunk in te.format():
        for line in chunk.rstrip("\n").split("\n"):
            # Indented lines are the stack: source files and code. Lines at column 0 are messages.
            keep = line.startswith(" ") or line.startswith("Traceback (most recent call last)")
            lines.append(line if keep else scrub(line))
    return "\n".join(lines) + "\n"


def _crash(exc: BaseException, argv: list[str]) -> int:
    """An exception that is not a ``GoutEdgeError``: one line on stderr, the details in a file."""
    text = crash_report(exc, argv)
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    saved = None
    for folder in (crash_folder(), Path.cwd(), Path(os.environ.get("TMPDIR", "/tmp"))):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            with open(path, "x", encoding="utf-8") as fh:
                fh.write(text)
            saved = path
            break
        except OSError:
            continue
    where = f"details saved to {saved}" if saved else "the details could not be saved (no writable folder)"
    typer.secho(
        f"error: internal error ({type(exc).__name__}) — a bug in gout-edge, not a problem with your input; "
        f"{where}; please report it with that file",
        err=True, fg=typer.colors.RED,
    )
    return INTERNAL_ERROR_EXIT


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and maps ``GoutEdgeError`` to its exit code, and anything else to
    ``INTERNAL_ERROR_EXIT`` with a crash file (docs/design.md §8)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # Without standalone mode, click returns (not raises) the code of a typer.Exit.
        code = app(args=argv, standalone_mode=False)
    except GoutEdgeError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as exc:
        # Usage errors (click's ClickException, vendored by recent typer) know how to show themselves.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        return _crash(exc, args)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
