"""Shadow evaluation: a new bundle against the old over a hospital archive (``gout-edge shadow``,
docs/shadow.md).

Every study of the archive is scored by both bundles through the cart's pipeline and verdict rule
(``edge_runtime.pipeline.stages``), on a local process pool or on Ray Data actors; each finished
study is committed at once, so a rerun resumes; the per-frame and per-study tables are Parquet,
and the report (HTML, PDF) says how the verdicts change, overall and by stratum.

    from gout_edge.shadow import ShadowConfig, run_shadow

    result = run_shadow(ShadowConfig(archive=Path("archive"), against="old-bundle", out=Path("shadow-out")))

Modules: ``archive`` (studies of a DICOM tree or an index table), ``study`` (one study, both
bundles: the per-study function), ``engines`` (local pool, Ray Data), ``work`` (the per-study
commits), ``tables`` (Parquet), ``metrics`` (kappa, McNemar, refusal rates, strata), ``report``
(HTML, PDF, figures), ``run`` (all of it in order). pyarrow and matplotlib (``gout-edge[shadow]``)
and Ray (``gout-edge[cluster]``) are imported only when used.
"""

from __future__ import annotations

from .run import FORMAT, FORMAT_VERSION, ShadowConfig, ShadowResult, run_shadow

__all__ = ["FORMAT", "FORMAT_VERSION", "ShadowConfig", "ShadowResult", "run_shadow"]
