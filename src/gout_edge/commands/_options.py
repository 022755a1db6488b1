"""Options shared by the commands, defined once: the bundle, its signature key, the engine and its
threads, and ``--json``. Each helper returns a fresh ``typer.Option`` for a parameter default.

Every command that reads a bundle takes ``--bundle DIR`` and falls back to the demo bundle shipped
with gout-edge; ``bundle_argument()`` keeps the old positional form of ``info`` and ``verify``
working (hidden, deprecated) and ``pick_bundle`` reconciles the two.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from gout_edge.errors import UsageError

__all__ = [
    "Backend",
    "LegacyBundleCommand",
    "Precision",
    "announce_default_bundle",
    "backend_option",
    "bundle_argument",
    "bundle_option",
    "demo_bundle_refusal",
    "is_installed_bundle",
    "json_option",
    "out_folder",
    "pick_bundle",
    "positive",
    "precision_option",
    "public_key_option",
    "seed_option",
    "threads_option",
]


class Backend(str, Enum):
    """``--backend``: the inference engine (names of ``edge_runtime.inference.backends.REGISTRY``, or auto)."""

    auto = "auto"
    onnxruntime = "onnxruntime"
    openvino = "openvino"


class Precision(str, Enum):
    """``--precision`` of one engine (``edge_runtime.inference.backends.PRECISIONS``, or auto)."""

    auto = "auto"
    int8 = "int8"
    fp32 = "fp32"


def bundle_option(help: str = "Bundle directory (default: the shipped bundle for this CPU — the paper's model with VNNI, the compact one without; `gout-edge info` says which).") -> Any:
    return typer.Option(None, "--bundle", metavar="DIR", help=help, show_default=False)


class LegacyBundleCommand(TyperCommand):
    """A command whose usage line leaves out hidden arguments (the deprecated positional bundle)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not getattr(param, "hidden", False):
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def bundle_argument() -> Any:
    """The deprecated positional bundle of ``info`` and ``verify`` (hidden from the help)."""
    return typer.Argument(None, metavar="BUNDLE", hidden=True, show_default=False)


def pick_bundle(option: Path | None, positional: Path | None, command: str) -> Path | None:
    """``--bundle`` or, deprecated, the positional bundle; both at once must agree."""
    if positional is None:
        return option
    if option is not None and Path(option) != Path(positional):
        raise UsageError(f"two bundles given ({positional} and --bundle {option}); give one, with --bundle")
    from ._output import stderr

    stderr.print(f"note: `gout-edge {command} BUNDLE` is deprecated; use `gout-edge {command} --bundle BUNDLE`",
                 markup=False, highlight=False, soft_wrap=True)
    return positional


def is_installed_bundle(bundle: Path | None) -> bool:
    """Whether ``bundle`` (None: the default) is one of the bundles shipped inside the installed
    package (the paper's demo bundle or the compact one)."""
    from gout_edge.edge_runtime.inference.shipped import is_shipped_path

    return bundle is None or is_shipped_path(bundle)


def demo_bundle_refusal(command: str, what: str, bundle: Path | None = None) -> UsageError:
    """The usage error for a command that would change a shipped bundle (``bundle``; None: the default)."""
    from gout_edge.edge_runtime.inference.loading import default_bundle_path

    shipped = Path(bundle) if bundle is not None else default_bundle_path()
    return UsageError(
        f"{what} into the bundle's manifest, and the shipped bundle {shipped} belongs to the installed gout-edge "
        f"package, which stays unchanged; copy it first and pass the copy: "
        f"cp -r {shipped} ./my-bundle; gout-edge {command} --bundle ./my-bundle ..."
    )


def announce_default_bundle(bundle: Path | None, json_out: bool) -> dict[str, Any] | None:
    """With no ``--bundle``: which shipped bundle is the default on this device and why — one line
    on stderr for people (not with ``--json``) and the ``default_bundle`` field for ``--json``
    documents. With ``--bundle``: nothing said, None."""
    if bundle is not None:
        return None
    from gout_edge.edge_runtime.inference.shipped import default_bundle

    chosen = default_bundle()
    if not json_out:
        from ._output import stderr

        stderr.print(chosen.line(), markup=False, highlight=False, soft_wrap=True)
    return chosen.to_dict()


def out_folder(path: Path, option: str = "--out") -> Path:
    """Check that ``path`` can be an output folder, before any work: a file in its place is a usage
    error (exit 2), a folder that cannot be made or written (no such parent, no permission, a
    read-only or virtual file system) a bad input (exit 3). What this check creates it removes
    again, so a command that fails later leaves nothing behind."""
    from gout_edge.errors import InputError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file, not a folder; give a folder (it is made if needed)")
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".gout-edge-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise InputError(
            f"{option} {path} cannot be used as an output folder ({exc.strerror or type(exc).__name__}); "
            "give a folder you may write to"
        ) from None
    finally:
        for folder in missing:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
    return path


def positive(value: float | None) -> float | None:
    """Option callback: a number above 0 (typer's ``min`` includes its bound)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g} is not above 0.")
    return value


def public_key_option(help: str = "Require a signature by this Ed25519 public key.") -> Any:
    return typer.Option(None, "--public-key", metavar="FILE", help=help, show_default=False)


def threads_option(help: str = "Inference threads (default: the engine's).") -> Any:
    return typer.Option(None, "--threads", min=1, metavar="N", help=help, show_default=False)


def backend_option(help: str = "Inference engine: auto, onnxruntime or openvino.") -> Any:
    return typer.Option(Backend.auto, "--backend", metavar="ENGINE", help=help, case_sensitive=False)


def precision_option(help: str = "auto, int8 or fp32.") -> Any:
    return typer.Option(Precision.auto, "--precision", metavar="NAME", help=help, case_sensitive=False)


def seed_option(help: str) -> Any:
    return typer.Option(0, "--seed", min=0, metavar="N", help=help)


def json_option(help: str = "Print one JSON document on stdout.") -> Any:
    return typer.Option(False, "--json", help=help)


def input_size(text: str | None, option: str = "--input-size") -> Any:
    """``HxW`` (e.g. ``160x350``) as the manifest's ``InputSpec``; None stays None."""
    if not text:
        return None
    from gout_edge.errors import UsageError
    from gout_edge.manifest import InputSpec

    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not HxW (e.g. 160x350)") from None
    return InputSpec(height=height, width=width)
