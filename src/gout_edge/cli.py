"""The ``gout-edge`` command: a typer app whose subcommands live in ``gout_edge.commands``.

Each command module exposes ``register(app)`` and imports its heavy dependencies (torch, onnx,
OpenVINO) inside the command body, so ``gout-edge info`` on a cart never loads torch. Expected
failures (``GoutEdgeError``) become one message on stderr and the exit code of docs/design.md §8.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from . import __version__
from .errors import GoutEdgeError

COMMANDS = ("info", "export", "keygen", "phantom", "train", "calibrate", "evaluate", "verify", "scan", "bench")

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


for _name in COMMANDS:
    importlib.import_module(f"{__package__}.commands.{_name}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and maps ``GoutEdgeError`` to its exit code."""
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
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
