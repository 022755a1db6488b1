"""The bundles shipped inside the package, and which of them is the default on this device.

gout-edge ships the paper's model (``demo/bundle``: ResNet, 3 stages of width 64, 320 × 700) and,
once trained, a compact distilled student (``demo/compact``: width 32, 224 × 490, several times
faster on INT8 without VNNI). The default follows the CPU: with VNNI (INT8 dot products) the
paper's model meets its latency budget, so it is the default; without VNNI — the budgets'
reference cart, AVX2 only — INT8 runs about 2× slower and the compact bundle, made for that class
of cart, is the default when it is installed. A process-wide ``ONEDNN_MAX_CPU_ISA`` that takes VNNI
away (``bench --isa`` runs its children so) counts as a CPU without it. Without the compact
bundle, the paper's model stays the default everywhere.

``default_bundle`` takes the CPU's features and the shipped bundles as arguments, so that the
rule can be asked for any CPU class; ``loading.default_bundle_path`` is its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gout_edge.manifest import MANIFEST_NAME, TextEnum

from .cpu import cpu_features, cpu_isa, has_vnni, isa_cap, vnni_name

__all__ = ["SHIPPED_FOLDERS", "DefaultBundle", "Shipped", "default_bundle", "is_shipped_path", "shipped_bundles",
           "shipped_folder"]


class Shipped(TextEnum):
    """The bundles that may ship inside the package."""

    PAPER = "paper"  # the paper's model
    COMPACT = "compact"  # the distilled student for carts without VNNI


SHIPPED_FOLDERS: Mapping[Shipped, str] = {Shipped.PAPER: "bundle", Shipped.COMPACT: "compact"}
"""Each shipped bundle's folder under ``gout_edge/demo/``."""

_DESCRIPTION = {Shipped.PAPER: "the paper's model", Shipped.COMPACT: "the compact bundle"}


def shipped_folder(name: Shipped) -> Path:
    """Where the shipped bundle ``name`` lives in the installed package (whether it is there or not)."""
    return Path(str(resources.files("gout_edge") / "demo" / SHIPPED_FOLDERS[name]))


def shipped_bundles() -> dict[Shipped, Path]:
    """The shipped bundles installed with this copy of gout-edge: those whose manifest is there."""
    return {name: folder for name in Shipped if ((folder := shipped_folder(name)) / MANIFEST_NAME).is_file()}


def is_shipped_path(path: Path | str) -> bool:
    """Whether ``path`` is one of the shipped bundles' folders (installed or not): the package's own,
    never to be written into."""
    try:
        resolved = Path(path).resolve()
        return any(resolved == shipped_folder(name).resolve() for name in Shipped)
    except OSError:
        return False


@dataclass(frozen=True)
class DefaultBundle:
    """The bundle a command opens when none is given: which shipped one, where, and why (a sentence
    for people)."""

    name: Shipped
    path: Path
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name.value, "path": str(self.path), "why": self.why}

    def line(self) -> str:
        """One line for stderr: ``default bundle: compact (PATH) — why``."""
        return f"default bundle: {self.name} ({self.path}) — {self.why}; --bundle DIR to choose another"


def _cpu_words(features: Sequence[str], cap: str | None) -> str:
    """What this CPU lacks, in words: ``this CPU has AVX2 without VNNI`` or the cap that hides VNNI."""
    if cap is not None and has_vnni(features):
        return f"oneDNN is capped to {cap} (ONEDNN_MAX_CPU_ISA), which leaves out this CPU's {vnni_name(features)}"
    isa = cpu_isa(features)
    if isa is None:
        return "this CPU has no AVX2 and no VNNI"
    return "this CPU has AVX-512 without VNNI" if isa == "AVX512_CORE" else "this CPU has AVX2 without VNNI"


def default_bundle(
    features: Sequence[str] | None = None,
    shipped: Mapping[Shipped, Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> DefaultBundle:
    """The default bundle for a CPU with these ``DeviceInfo.features`` (default: this one's), among
    the ``shipped`` bundles (default: ``shipped_bundles()``), under the oneDNN cap of ``environ``
    (default: this process's ``ONEDNN_MAX_CPU_ISA``).

    VNNI (not capped away) → the paper's model; no VNNI and the compact bundle is shipped → the
    compact one; otherwise the paper's model, with a why that says the compact one is not installed.
    """
    features = cpu_features() if features is None else tuple(features)
    shipped = shipped_bundles() if shipped is None else dict(shipped)
    paper = shipped.get(Shipped.PAPER, shipped_folder(Shipped.PAPER))
    cap = isa_cap(environ)
    if not shipped:
        return DefaultBundle(Shipped.PAPER, paper, "no bundle is installed with this copy of gout-edge; pass one with --bundle DIR")
    if has_vnni(features, cap):
        why = f"this CPU has {vnni_name(features)}: {_DESCRIPTION[Shipped.PAPER]} meets its latency budget here"
        if Shipped.PAPER in shipped:
            return DefaultBundle(Shipped.PAPER, paper, why)
        return DefaultBundle(Shipped.COMPACT, shipped[Shipped.COMPACT],
                             f"{why}, but it is not installed with this copy of gout-edge: {_DESCRIPTION[Shipped.COMPACT]}")
    slower = f"{_cpu_words(features, cap)} (INT8 runs about 2× slower)"
    if Shipped.COMPACT in shipped:
        return DefaultBundle(Shipped.COMPACT, shipped[Shipped.COMPACT],
                             f"{slower}: {_DESCRIPTION[Shipped.COMPACT]}, made for this class of cart")
    return DefaultBundle(Shipped.PAPER, paper, f"{slower}: {_DESCRIPTION[Shipped.PAPER]}, which may miss its latency "
                         "budget here — the compact bundle made for such carts is not installed with this copy of gout-edge")
