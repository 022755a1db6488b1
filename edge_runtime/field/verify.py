"""Field verification: does this device reproduce the model owner's outputs? (docs/design.md §4)

``verify_bundle`` is what ``gout-edge verify`` runs when a cart is installed, updated or serviced:

1. **integrity** — the manifest's signature (when this device has a public key) and every file's
   SHA-256 (``open_bundle``; a mismatch raises ``BundleTamperedError`` naming the file, exit 4);
2. **reference outputs** — every input of the bundle's reference set (raw scanner screens that
   need ROI extraction, DICOM files decoded here) through the whole edge path — ``prepare`` →
   backend → CAM — on each available backend × precision the bundle offers, compared with the
   outputs the model owner recorded for that model file: probabilities, image decisions, CAM
   correlation, ROI boxes, blank/colour flags and the scope guard's distances and refusals (the
   set holds out-of-scope screens the guard must refuse);
3. **reference patients** — their decisions recomputed with the *current* manifest's decision
   settings, from the recorded probabilities and from the ones measured here, against the
   expected decisions (set at export and refreshed by whoever sets the threshold: see
   ``refresh_expected_decisions``), so that an edited threshold that changes a decision fails;
4. **latency** — p50 / p99 end to end (raw frame → probability with CAM) against the budgets.

Every check has a name, the measured value, the tolerance and pass/fail; the
``VerificationRecord`` adds the device (hashed host name, CPU features, library versions), the
bundle's identity and the SHA-256 of its ``manifest.json``, and the UTC time. No patient data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge.edge_runtime.inference.backends import (
    PRECISIONS,
    REGISTRY,
    available_backends,
    model_role,
    precisions_offered,
    resolve,
)
from gout_edge.edge_runtime.inference.cam_scale import cam_correlation
from gout_edge.edge_runtime.inference.loading import load_expected
from gout_edge.errors import BundleError, UsageError
from gout_edge.manifest import DecisionSpec, ReferenceSet, ScopeSpec, ToleranceSet
from gout_edge.reference_format import ReferenceOutputs, reference_section
from gout_edge.signing import configured_public_key

from .latency import end_to_end_ms
from .records import (
    Check,
    VerificationRecord,
    bundle_record,
    default_bundle_record,
    device_record,
    refused_record,
    utc_now,
)
from .reference_inputs import load_reference_frames, patient_decisions, run_reference, stored_decisions

__all__ = ["refused_record", "verify_bundle"]


def _compare(
    label: str,
    ref: ReferenceSet,
    expected: ReferenceOutputs,
    measured: ReferenceOutputs,
    tol: ToleranceSet,
    roi_tol: int,
    decision: DecisionSpec,
    expected_decisions: dict[str, str] | None,
    scope: ScopeSpec | None = None,
) -> list[Check]:
    ids = [item.id for item in ref.inputs]
    checks = []
    diff = np.abs(measured.probability.astype(np.float64) - expected.probability)
    worst = int(np.argmax(diff))
    checks.append(Check(
        f"{label}: probabilities", "reference", bool(diff.max() <= tol.probability_abs),
        {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "worst_input": ids[worst]},
        {"max_abs_diff": tol.probability_abs},
        f"{len(ids)} inputs",
    ))
    cut = decision.image_cutoff
    exp_d, got_d = expected.probability > cut, measured.probability > cut
    band = np.abs(expected.probability.astype(np.float64) - cut) <= tol.image_decision_band
    flipped = exp_d != got_d
    outside = [ids[i] for i in np.flatnonzero(flipped & ~band)]
    checks.append(Check(
        f"{label}: image decisions", "reference", not outside,
        {"differ_outside_band": len(outside), "differ_within_band": int((flipped & band).sum()), "inputs": outside},
        {"identical_outside_band_around_cutoff": tol.image_decision_band, "image_cutoff": cut},
    ))
    usable = ~expected.blank  # a blank frame's CAM is noise and is never shown
    corr = cam_correlation(expected.cam[usable], measured.cam[usable]) if usable.any() else np.ones(1)
    checks.append(Check(
        f"{label}: CAM correlation", "reference", bool(corr.min() >= tol.cam_correlation_min),
        {"min": float(corr.min()), "mean": float(corr.mean())},
        {"min": tol.cam_correlation_min},
        "Pearson, per input, abnormal-class CAM; blank frames excluded",
    ))
    roi_diff = int(np.abs(measured.roi.astype(np.int64) - expected.roi).max()) if len(ids) else 0
    flags = int((measured.blank != expected.blank).sum() + (measured.colour != expected.colour).sum())
    checks.append(Check(
        f"{label}: ROI and frame flags", "reference", roi_diff <= roi_tol and flags == 0,
        {"roi_max_abs_px": roi_diff, "flag_mismatches": flags},
        {"roi_max_abs_px": roi_tol, "flag_mismatches": 0},
        "B-mode region found by preprocessing; blank and colour (Doppler) flags",
    ))
    if expected.scope is not None and measured.scope is not None and scope is not None:
        checks.append(_scope_check(label, ids, expected.scope, measured.scope, scope.threshold, tol.scope_rel))
    if ref.patients:
        got = patient_decisions(ref, measured.probability, decision)
        want = expected_decisions or {}
        wrong = {k: {"measured": got.get(k), "expected": v} for k, v in want.items() if got.get(k) != v}
        checks.append(Check(
            f"{label}: patient decisions", "decisions", bool(want) and not wrong,
            got, {"identical_to": want},
            "; ".join(f"{k}: {w['measured']} here, {w['expected']} expected" for k, w in wrong.items())
            if wrong else ("no expected decisions for this model file" if not want else ""),
        ))
    return checks


def _manifest_decision_checks(ref: ReferenceSet, expected: dict[str, ReferenceOutputs], decision: DecisionSpec) -> list[Check]:
    """Recorded probabilities + the current decision settings → the expected decisions?"""
    if not ref.patients:
        return []
    checks = []
    index = {item.id: i for i, item in enumerate(ref.inputs)}
    worst = 0.0
    for pt in ref.patients:
        for role, probs in pt.probabilities.items():
            if role in expected:
                stored = expected[role].probability[[index[i] for i in pt.inputs]]
                worst = max(worst, float(np.abs(np.asarray(probs, np.float64) - stored).max()))
            else:
                worst = float("inf")
    checks.append(Check(
        "reference patients: recorded probabilities", "decisions", worst <= 1e-6,
        {"max_abs_diff_manifest_vs_expected_file": worst}, {"max_abs_diff": 1e-6},
        "the manifest's per-patient probabilities agree with reference/expected outputs",
    ))
    decided_with = {} if ref.decided_with is None else dataclasses.asdict(ref.decided_with)
    now = {"image_cutoff": decision.image_cutoff, "patient_threshold": decision.patient_threshold,
           "min_key_frames": decision.min_key_frames}
    for role, want in ref.expected_decisions.items():
        got = stored_decisions(ref, role, decision) if all(role in pt.probabilities for pt in ref.patients) else {}
        wrong = sorted(k for k, v in want.items() if got.get(k) != v)
        detail = ""
        if wrong:
            detail = (
                f"with the manifest's decision settings {now}, reference patient(s) {', '.join(wrong)} get "
                f"{', '.join(str(got.get(k)) for k in wrong)} instead of {', '.join(want[k] for k in wrong)} "
                f"(expected decisions were set with {decided_with}): the threshold or decision rule changed "
                "after the reference decisions were set — if this was a recalibration, rerun `gout-edge calibrate`, "
                "otherwise the manifest has been edited"
            )
        checks.append(Check(
            f"reference patients ({role}): decisions with the current threshold", "decisions", not wrong,
            got, {"identical_to": want, "decided_with": decided_with}, detail,
        ))
    return checks


def _latency_checks(bundle, frames, backend: str, precision: str, n: int, threads: int | None) -> list[Check]:
    budgets = bundle.manifest.budgets
    label = f"{backend}/{precision}"
    if n <= 0:
        return [Check(f"latency end to end ({label})", "latency", True, "skipped", budgets.end_to_end_p50_ms,
                      "latency frames set to 0", skipped=True)]
    times = end_to_end_ms(bundle, frames, backend, precision, n, threads)
    measured = {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}
    checks = []
    for q, budget in (("p50", budgets.end_to_end_p50_ms), ("p99", budgets.end_to_end_p99_ms)):
        checks.append(Check(
            f"latency end to end {q} ({label})", "latency", bool(measured[q] <= budget),
            {"ms": round(measured[q], 3), "frames": n}, {"max_ms": budget},
            "raw reference frame → ROI → preprocess → inference with CAM, batch 1, ROI detected on every frame (DICOM: its declared region)",
        ))
    return checks


def _scope_check(label: str, ids: list[str], expected: np.ndarray, measured: np.ndarray, threshold: float,
                 rel: float) -> Check:
    """Scope distances within ``rel`` × threshold of the recorded ones, and the same frames refused
    (a frame within that band of the threshold may flip)."""
    diff = np.abs(measured.astype(np.float64) - expected)
    band = np.abs(expected.astype(np.float64) - threshold) <= rel * threshold
    flipped = (expected > threshold) != (measured > threshold)
    outside = [ids[i] for i in np.flatnonzero(flipped & ~band)]
    refused = [ids[i] for i in np.flatnonzero(measured > threshold)]
    ok = bool(diff.max() <= rel * threshold) and not outside
    return Check(
        f"{label}: scope guard", "reference", ok,
        {"max_abs_diff": float(diff.max()), "refusals_differ_outside_band": outside, "refused": refused},
        {"max_abs_diff": rel * threshold, "threshold": threshold},
        "distance of each input from the in-scope images; the out-of-scope references must be refused",
    )


def _signature_check(root: Path, key: Any, required: bool) -> Check:
    """Checked (``open_bundle`` refused the bundle otherwise) when a key is configured; else *not
    checked* — skipped, or failed with ``required``."""
    where = "--public-key FILE, GOUT_EDGE_PUBLIC_KEY or trusted.pub"
    tolerance = f"a valid Ed25519 signature by the configured public key ({where})" + (
        "; required (--require-signature)" if required else "; checked when a public key is configured")
    if key is not None:
        return Check("signature", "integrity", True, f"valid Ed25519 signature by the configured key {key}", tolerance)
    signed = (root / "manifest.sig").is_file()
    measured = "not checked: no public key configured on this device" + (
        " (the bundle is signed)" if signed else " (the bundle is unsigned)")
    if required:
        return Check("signature", "integrity", False, measured, tolerance,
                     f"--require-signature: configure the owner's public key ({where}) and sign the bundle "
                     "(gout-edge export … --sign-key, or calibrate --sign-key)")
    return Check("signature", "integrity", True, measured, tolerance, skipped=True)


def verify_bundle(
    path: Path | str | None = None,
    public_key: Path | str | None = None,
    backends: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    latency_frames: int = 20,
    threads: int | None = None,
    require_signature: bool = False,
) -> VerificationRecord:
    """Verify the bundle at ``path`` (default: the shipped bundle for this CPU, ``shipped.default_bundle``) on this device.

    The signature is checked when this device has a public key; without one it is recorded as
    *not checked* (a skipped check, never a pass), and ``require_signature`` makes that a failure.

    Raises ``BundleError`` / ``BundleTamperedError`` when the bundle is invalid or tampered with
    (``refused_record`` describes that case); otherwise returns the record, ``passed`` or
    ``failed``.
    """

    from gout_edge.edge_runtime.inference.loading import default_bundle_path, open_bundle

    for b in backends or ():
        if b not in REGISTRY:
            raise UsageError(f"unknown backend {b!r}; choose from {', '.join(REGISTRY)}")
    for p in precisions or ():
        if p not in PRECISIONS:
            raise UsageError(f"unknown precision {p!r}; choose fp32 or int8")
    root = Path(path) if path is not None else default_bundle_path()
    if path is None and not root.exists():
        raise BundleError(f"no bundle given and the demo bundle is not installed ({root}); pass one: gout-edge verify --bundle DIR")
    key = configured_public_key(public_key)
    options = {"backends": list(backends) if backends else "all available", "precisions": list(precisions) if precisions
               else "all in the bundle", "latency_frames": latency_frames, "threads": threads,
               "require_signature": require_signature}
    created = utc_now()
    bundle = open_bundle(root, public_key)  # signature (when a key is configured) and every file's hash
    manifest = bundle.manifest
    ref = reference_section(manifest)
    checks = [
        Check("files", "integrity", True, f"{len(manifest.files)} files, SHA-256 as in the manifest",
              "every file listed and unmodified"),
        _signature_check(bundle.root, key, require_signature),
    ]
    frames = load_reference_frames(bundle)
    expected, n = load_expected(bundle)
    tolerances = ref.tolerances
    decision = manifest.decision
    checks.append(Check(
        "reference set", "reference", n >= 1 and bool(expected), {"inputs": n, "model_files": sorted(expected)},
        "inputs with expected outputs for each model file",
    ))
    checks += _manifest_decision_checks(ref, expected, decision)

    installed = available_backends()
    wanted_backends = list(backends) if backends else list(REGISTRY)
    wanted_precisions = list(precisions) if precisions else precisions_offered(bundle.manifest.roles())
    combos = []
    for b in wanted_backends:
        for p in wanted_precisions:
            role = model_role(bundle.manifest.roles(), b, p)
            if role is None:
                if backends and precisions:
                    checks.append(Check(f"{b}/{p}", "reference", False, "cannot run", "the bundle has a model for it",
                                        f"the bundle has no model file that {b} runs at {p}"))
                continue
            if b not in installed:
                checks.append(Check(f"{b}/{p}", "reference", not backends, "not installed", "run when installed",
                                    f"{b} is not installed on this device", skipped=not backends))
                continue
            combos.append((b, p, role))
    if not combos:
        checks.append(Check("edge path", "reference", False, "nothing ran", "at least one backend × precision",
                            "no requested backend × precision can run this bundle here"))
    engines = ref.engines
    runs = []
    for b, p, role in combos:
        label = f"{b}/{p}"
        if role not in expected:
            checks.append(Check(f"{label}: expected outputs", "reference", False, "missing", role,
                                f"the reference set has no expected outputs for {role}"))
            continue
        measured = run_reference(bundle, frames, b, p, threads)
        checks += _compare(
            label, ref, expected[role], measured, tolerances.of(p), tolerances.roi_max_abs_px, decision,
            ref.expected_decisions.get(role), manifest.scope,
        )
        made_by = engines.get(role)
        runs.append({"backend": b, "precision": p, "model_file": role,
                     "expected_made_by": None if made_by is None else dataclasses.asdict(made_by)})
    if combos:
        auto = None
        try:

            auto = resolve(bundle)
        except Exception:  # noqa: BLE001 - fall back to the first verified pair
            pass
        b, p = auto if auto and any(auto == (c[0], c[1]) for c in combos) else combos[0][:2]
        checks += _latency_checks(bundle, frames, b, p, latency_frames, threads)
    options["runs"] = runs
    status = "passed" if all(c.passed for c in checks) else "failed"
    return VerificationRecord(
        status=status, created_utc=created, device=device_record(),
        bundle={**bundle_record(bundle.root, manifest, key, key is not None), "identity": bundle.identity},
        options=options, checks=tuple(checks), default_bundle=default_bundle_record(path),
    )

