"""``gout-edge info [--bundle DIR]``: what a bundle holds and what this device offers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._options import (
    LegacyBundleCommand,
    announce_default_bundle,
    bundle_argument,
    bundle_option,
    json_option,
    pick_bundle,
    public_key_option,
)
from ._output import emit_json, stdout


def register(app: typer.Typer) -> None:
    @app.command("info", cls=LegacyBundleCommand, short_help="Show what a bundle holds and what this device offers.")
    def info(
        bundle: Optional[Path] = bundle_option(),
        public_key: Optional[Path] = public_key_option(),
        json_out: bool = json_option(),
        old_bundle: Optional[Path] = bundle_argument(),
    ) -> None:
        """Show what a bundle holds (model, files, decision, budgets) and what this device offers."""
        bundle = pick_bundle(bundle, old_bundle, "info")
        default = announce_default_bundle(bundle, json_out)
        from rich.table import Table

        from gout_edge.edge_runtime.inference.device import device_info
        from gout_edge.edge_runtime.inference.loading import default_bundle_path, open_bundle

        device = device_info()
        opened = None
        if bundle is not None or default_bundle_path().exists():
            opened = open_bundle(bundle, public_key)
        files = outside_files()
        if json_out:
            emit_json(
                {
                    "bundle": None if opened is None else {"path": str(opened.root), "manifest": opened.manifest.to_dict()},
                    "default_bundle": default,
                    "device": device,
                    "files_outside": files,
                }
            )
            return
        if opened is None:
            stdout.print("[yellow]no bundle given and no demo bundle installed[/]")
        else:
            m = opened.manifest
            table = Table(title=f"bundle {opened.root}", show_header=False)
            widths = "-".join(map(str, m.model.widths))
            table.add_row("model", f"{m.model.name} {m.model.version} — {m.model.architecture}, stage widths {widths}")
            table.add_row("parameters / MACs", f"{m.model.parameters:,} / {m.model.macs_per_frame / 1e9:.2f} GMAC per frame")
            table.add_row("input", f"{m.input.channels}×{m.input.height}×{m.input.width} {m.input.dtype}, standardized per image")
            o, classes = m.outputs, m.model.class_names
            table.add_row("outputs", f"{o.logits} over ({', '.join(classes)}; abnormal: {classes[m.model.abnormal_index]}), "
                          f"{o.cam} {o.cam_height}×{o.cam_width} (stride {o.cam_stride})"
                          + (f", {o.features} (pooled features)" if o.features else ""))
            threshold = "not calibrated" if m.decision.patient_threshold is None else f"{m.decision.patient_threshold:.3f}"
            table.add_row("decision", f"image cut-off {m.decision.image_cutoff}, patient threshold {threshold}")
            cam = m.cam
            table.add_row("CAM colour scale", f"{cam.lo:.3g} to {cam.hi:.3g}, fitted on {cam.fitted_on}" if cam is not None
                          else "not in the manifest: derived from the reference set when a scan opens the bundle")
            sc = m.scope
            if sc is None:
                table.add_row("scope guard", "none: this bundle answers on any image (exported before the guard existed)")
            else:
                method = sc.method + (f" (k={sc.k})" if sc.method == "knn" else "")
                compared = "; ".join(
                    f"{c['method']}{'' if c['method'] != 'knn' else ' k=' + str(c['k'])} AUROC {c['auroc']:.3f}, refuses "
                    f"{c['refused_out_of_scope']:.0%}" for c in sc.comparison.get("candidates", []))
                table.add_row("scope guard", f"{method}, threshold {sc.threshold:.4g} (refuses at most {sc.false_refusal_target:.0%} "
                              f"of held-out in-scope frames with any model file); exam indeterminate above {sc.max_out_of_scope_fraction:.0%} "
                              f"out of scope; fitted on {sc.fitted_on}; compared: {compared or 'n/a'}")
            b = m.budgets
            table.add_row("budgets", f"end to end p50 {b.end_to_end_p50_ms:g} / p99 {b.end_to_end_p99_ms:g} ms, preprocess "
                          f"{b.preprocess_1080p_p50_ms:g} ms, CAM overhead {b.cam_overhead_fraction:.0%}, cold start "
                          f"{b.cold_start_s:g} s, memory {b.resident_memory_mb:g} MB, INT8 ≥ {b.int8_speedup_vs_torch_fp32:g}× torch, "
                          f"scope guard {b.scope_guard_p50_ms:g} ms")
            tc = m.evaluation.threshold_calibration
            if tc:
                cv = tc.get("cross_validation")
                acc = cv["accuracy"] if cv else {}
                cv_text = "" if not cv else f", {cv['k']}-fold CV accuracy {acc['mean']:.3f} ± {acc['sd'] or 0:.3f}"
                table.add_row("threshold calibration", f"{tc.get('threshold')} on {tc.get('patients')} patients "
                              f"({tc.get('backend')} {tc.get('precision')}, {tc.get('date')}){cv_text}")
            held_out = m.evaluation.held_out
            if held_out:
                auc, acc = held_out["image_auc"], held_out["patient"]["accuracy"]
                patient = "" if not acc else f", patient accuracy {acc['estimate']:.1%} ({acc['k']}/{acc['n']})"
                table.add_row("held-out figures", f"image AUC {auc['auc']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}] on "
                              f"{held_out['images']} images{patient} ({held_out['backend']} {held_out['precision']})")
            fid = m.evaluation.fidelity
            if fid:
                t, d, agree, cam = fid["teacher"], fid["image_auc"], fid["verdict_agreement"], fid["cam_correlation"]
                scope = fid.get("scope_auroc") or {}
                table.add_row("distilled from", f"{t['name']} {t['version']} ({t['input']}, {t['macs_per_frame'] / 1e9:.2f} GMAC): "
                              f"AUC {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], same verdict "
                              f"{agree['k']}/{agree['n']} patients, CAM r median {cam['median']:.3f}, scope AUROC "
                              f"{scope.get('student')} (teacher {scope.get('teacher')}) on {fid['images']} held-out images")
            quant = m.quantization
            engines = {} if quant is None else {"onnxruntime": quant.onnxruntime, "openvino": quant.openvino}
            for engine, q in engines.items():
                if q:
                    f = q["fidelity"]
                    fp32 = "" if quant is None or quant.fp32_latency_ms is None else f" (FP32 {quant.fp32_latency_ms:.1f} ms)"
                    table.add_row(f"INT8 ({engine})", f"{q.get('scheme', 'NNCF')}: AUC {f['auc_fp32']:.4f} → {f['auc_int8']:.4f}, "
                                  f"CAM r {f['cam_correlation_mean']:.4f}, {q['latency_ms']:.1f} ms at export{fp32}")
            if quant is not None:
                verdict = "passed" if quant.passed else (
                    "FAILED, INT8 models shipped anyway (--accept-drop)" if quant.accepted_by_user else "FAILED, INT8 models left out")
                cal = quant.calibration
                table.add_row("INT8 gate", f"{verdict}: AUC drop ≤ {quant.gate.max_auc_drop:g}, CAM r ≥ "
                              f"{quant.gate.min_cam_correlation:g}; calibrated on {cal.get('calibration_images')} images of "
                              f"{cal.get('calibration_patients')} patients ({cal.get('source')})")
            if m.export is not None:
                e, p = m.export, m.export.parity
                versions = ", ".join(f"{k} {v}" for k, v in e.versions.items())
                table.add_row("export", f"{versions}; ONNX opset {e.opset}; parity vs torch on {p.inputs} inputs: logits "
                              f"{p.logits_max_abs_diff:.1e}, CAM {p.cam_max_abs_diff:.1e}, identity {p.identity_max_abs_diff:.1e} "
                              f"(tolerance {p.tolerance:g})" + ("; RGB conv1 folded to grey" if e.folded_rgb_stem else ""))
            if m.reference is not None:
                r = m.reference
                table.add_row("reference set", f"{len(r.inputs)} inputs, {len(r.patients)} patients, {r.size_bytes / 1e6:.2f} MB, "
                              f"expected outputs of {', '.join(r.engines) or 'no model file'}; from {r.source}")
            table.add_row("provenance", m.model.provenance)
            table.add_row("intended use", m.model.intended_use)
            for entry in m.files:
                table.add_row(f"file ({entry.role})", f"{entry.path} ({entry.size / 1e6:.1f} MB, sha256 {entry.sha256[:12]}… ok)")
            stdout.print(table)
        dev = Table(title="this device", show_header=False)
        dev.add_row("CPU", f"{device.cpu_model} ({device.machine})")
        dev.add_row("cores", f"{device.logical_cores} logical, {device.physical_cores or '?'} physical")
        dev.add_row("features", ", ".join(device.features) or "none detected")
        dev.add_row("backends", ", ".join(device.backends) or "none")
        dev.add_row("versions", ", ".join(f"{k} {v}" for k, v in device.versions.items()))
        stdout.print(dev)
        out = Table(title="files outside the working folder", show_header=False)
        cache = files["openvino_cache"]
        size = "" if cache["size_bytes"] is None else f", {cache['size_bytes'] / 1e6:.1f} MB now"
        out.add_row("OpenVINO model cache", (f"{cache['path']}{size}" if cache["path"] else "off")
                    + f" ({cache['env']}: a folder, or off)")
        out.add_row("crash files", f"{files['crash_files']} (XDG_STATE_HOME), only after an internal error")
        tm = files["third_party_telemetry"]
        out.add_row("third-party telemetry", ("off: OpenVINO's and NNCF's usage counter (~/intel/) is not loaded"
                                              if tm["off"] else "left to the libraries' own settings")
                    + f" ({tm['env']}=on to leave it to them)")
        stdout.print(out)


def outside_files() -> dict:
    """What gout-edge keeps outside the folders a command is given (README "Files outside the working folder")."""
    from gout_edge._io import crash_folder
    from gout_edge._telemetry import TELEMETRY_ENV, third_party_telemetry_blocked
    from gout_edge.edge_runtime.inference.backends.openvino import CACHE_ENV, default_cache_dir

    cache = default_cache_dir()
    size = None
    if cache is not None and cache.is_dir():
        size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    return {
        "openvino_cache": {"path": None if cache is None else str(cache), "env": CACHE_ENV, "size_bytes": size},
        "crash_files": str(crash_folder()),
        "third_party_telemetry": {"off": third_party_telemetry_blocked(), "env": TELEMETRY_ENV},
    }
