"""Profiling bundles: measure a latency table on a device where torch (and hnanas) cannot be installed.

``hnanas profile --latency-device jetson --bundle OUT.zip`` writes every context model of the space's entries, the
reference networks (fixed overhead) and a few random networks (validation), a manifest, and ``runner.py`` (the
same measuring code hnanas uses, needing only Python, numpy and onnxruntime). On the device::

    unzip OUT.zip -d bundle && python3 bundle/runner.py bundle --out results.csv

``hnanas profile import results.csv --latency-device jetson`` then turns the result into a table with the device's
provenance, its fixed overhead and its validation figures. Bundled weights are a constant (0.01): dense kernels
run the same whatever the values (inputs stay random), and the archive stays small.

With per-node profiles (CPU EP) entries are charged their own kernels, as on the host. Providers that report no
per-node times (CUDA, TensorRT: one fused engine) are measured end to end: an entry's time is its context model
minus half of the identity contexts of its inputs and output (``ctx_pre -> ctx_post`` of the same shapes), plus
half a run overhead per extra input -- an approximation that the bundled validation networks quantify.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from hnanas.errors import HnanasError
from hnanas.fileio import atomic_path, read_json
from hnanas.latency import runner
from hnanas.latency.correction import error_stats, fit_correction, loo_corrected
from hnanas.latency.e2e import boundary_shapes, entry_times
from hnanas.latency.entries import CONTEXT_IN, KEY_COLUMNS, ContextModel, Entry, context_model, space_entries
from hnanas.latency.profiler import ProfileSettings, calibration_networks, export_network
from hnanas.latency.table import FORMAT, LatencyTable
from hnanas.nas.genotype import sample_genotype
from hnanas.nas.space import SearchSpace
from hnanas.progress import progress
from hnanas.runtime import export_onnx

BUNDLE_FORMAT = "hnanas-profile-bundle/1"


def _constant_weights(model) -> None:
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.01)


def _export(model, examples, path: Path) -> None:
    _constant_weights(model)
    export_onnx(model, tuple(examples), path, dynamo=False, output_name="ctx_post_out")


def write_bundle(space: SearchSpace, out: Path, settings: ProfileSettings, n_validate: int = 10) -> Path:
    """Write the profiling bundle of ``space`` for ``settings.device`` to the zip ``out``."""
    import torch
    import torch.nn as nn

    entries = [e for e in space_entries(space) if not (e.kind == "reorder" and e.name == "to_nchwc")]
    with tempfile.TemporaryDirectory(prefix="hnanas-bundle-") as tmp:
        root = Path(tmp)
        (root / "models").mkdir()
        items, shapes = [], set()
        for i, e in enumerate(progress(entries, desc="bundle", unit="model")):
            model, examples = context_model(e, space)
            name = f"models/e{i:05d}.onnx"
            _export(model, examples, root / name)
            items.append({"id": f"e{i:05d}", **e.row(), "model": name})
            shapes |= set(boundary_shapes(e))
        for j, (c, h, w) in enumerate(sorted(shapes)):  # identity contexts for the end-to-end method
            name = f"models/i{j:04d}.onnx"
            _export(ContextModel(nn.Identity(), [c], c).eval(), [torch.randn(1, CONTEXT_IN, h, w)], root / name)
            items.append({"id": f"i{j:04d}", "kind": "identity", "name": "identity", "c_in": c, "c_out": c, "h": h,
                          "w": w, "stride": 1, "parts": "", "model": name})
        nets = [("reference", n, g) for n, g in calibration_networks(space).items()]
        nets += [("validation", f"random_{k}", sample_genotype(space, k)) for k in range(n_validate)]
        networks = []
        for role, name, g in progress(nets, desc="bundle networks", unit="net"):
            path = f"models/{role}_{name}.onnx"
            (root / path).write_bytes(export_network(space, g))
            networks.append({"id": f"{role}:{name}", "kind": "network", "role": role, "name": name,
                             "model": path, "genotype": g.to_dict()})
        manifest = {"format": BUNDLE_FORMAT, "space": space.name, "space_hash": space.hash,
                    "device": settings.device, "threads": settings.threads, "fp16": settings.fp16,
                    "measurement": {"opt_level": settings.opt_level, "warmup": settings.warmup,
                                    "runs": settings.runs, "min_time_s": settings.min_time_s,
                                    "sessions": settings.sessions},
                    "entries": items, "networks": networks}
        (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
        shutil.copy(runner.__file__, root / "runner.py")
        (root / "README.txt").write_text(
            f"hnanas profiling bundle for space {space.name} ({space.hash}), device {settings.device}.\n"
            "Needs Python 3.8+, numpy and onnxruntime (with the device's execution provider).\n"
            "  python3 runner.py . --out results.csv      # resumable; then copy results.csv and results.json back\n"
            f"  hnanas profile import results.csv --latency-device {settings.device}\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp_zip:
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(root.rglob("*")):
                    if f.is_file():
                        z.write(f, f.relative_to(root).as_posix())
    return out


def safe_extract(zip_path: Path, dest: Path) -> Path:
    """Unpack a bundle, refusing members that would land outside ``dest`` (zip-slip) or are links."""
    dest = dest.resolve()
    if not zipfile.is_zipfile(zip_path):
        raise HnanasError(f"{zip_path}: not a zip archive (or a damaged one); copy it again")
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            target = (dest / info.filename).resolve()
            if info.filename.startswith("/") or (dest not in target.parents and target != dest):
                raise HnanasError(f"{zip_path}: member {info.filename!r} would be written outside the folder it "
                                  "is unpacked to (zip-slip); refusing to unpack it: zip only the runner's files")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise HnanasError(f"{zip_path}: member {info.filename!r} is a symbolic link; refusing to unpack")
        z.extractall(dest)
    return dest


def import_results(csv_path: Path, space: SearchSpace, device: str) -> tuple[LatencyTable, dict]:
    """Turn a bundle's ``results.csv`` (+ ``results.json``) into a table; returns it and a validation report.
    ``csv_path`` may also be a zip holding both (the device's folder zipped back), unpacked by :func:`safe_extract`."""
    if csv_path.suffix.lower() == ".zip" and csv_path.is_file():
        with tempfile.TemporaryDirectory(prefix="hnanas-import-") as tmp:
            found = sorted(safe_extract(csv_path, Path(tmp)).rglob("results.csv"))
            if not found:
                raise HnanasError(f"{csv_path}: holds no results.csv; zip the runner's results.csv and results.json")
            return import_results(found[0], space, device)
    info_path = csv_path.with_suffix(".json")
    if not csv_path.is_file() or not info_path.is_file():
        raise HnanasError(f"{csv_path}: need the runner's results.csv and results.json side by side")
    info = read_json(info_path)
    if info.get("space_hash") != space.hash:
        raise HnanasError(f"{csv_path}: measured for space {info.get('space')} ({info.get('space_hash')}), not "
                          f"{space.name} ({space.hash}); pass --space with the space the bundle was made for")
    if info.get("device") != device:
        raise HnanasError(f"{csv_path}: measured for device {info.get('device')!r}, not {device!r}")
    rows = pd.read_csv(csv_path, keep_default_na=False)
    if info.get("method") == "e2e":
        rows["median_ms"] = entry_times(rows)
    nets = rows[rows.kind == "network"]
    frame = rows[rows.kind.isin(["op", "resample", "concat", "head", "reorder"])].copy()
    wanted = {e.key for e in space_entries(space)}
    have = {Entry(**{c: r[c] for c in KEY_COLUMNS}).key for r in frame.to_dict("records")}
    if wanted - have:
        raise HnanasError(f"{csv_path}: {len(wanted - have)} entries missing (e.g. {sorted(wanted - have)[0]}); "
                          "let the runner finish (it resumes) and import again")
    frame = frame[KEY_COLUMNS + ["median_ms", "p10_ms", "p90_ms", "n", "in_layout", "out_layout"]]
    meta = {"format": FORMAT, "space": space.name, "space_hash": space.hash, "space_source": space.source,
            "device": device, "threads": info["threads"], "providers": info["providers"],
            "graph_optimization_level": info["graph_optimization_level"], "onnxruntime": info["onnxruntime"],
            "platform": info["platform"], "host": info["host"], "date": info["date"], "method": info["method"],
            "imported_from": str(csv_path), "fixed_overhead_ms": 0.0, "n_entries": int(len(frame))}
    table = LatencyTable(frame.reset_index(drop=True), meta)
    manifest_nets = {}
    for r in nets.to_dict("records"):
        role, name = str(r["id"]).split(":", 1)
        manifest_nets.setdefault(role, []).append((name, float(r["median_ms"])))
    report: dict = {}
    refs = manifest_nets.get("reference", [])
    graphs = calibration_networks(space)
    refs = [(n, m) for n, m in refs if n in graphs]
    if len(refs) >= 2:
        pred = np.array([table.entries_sum(graphs[n], space) for n, _ in refs])
        factor, overhead = fit_correction(pred, np.array([m for _, m in refs]))
        meta.update(network_factor=factor, fixed_overhead_ms=overhead,
                    calibration_networks={n: {"measured_ms": m, "entries_ms": float(p)} for (n, m), p in zip(refs, pred)})
    val = manifest_nets.get("validation", [])
    if len(val) >= 5:
        table = LatencyTable(table.frame, meta)
        pred = np.array([table.predict(sample_genotype(space, int(n.split("_")[1])), space).raw_ms for n, _ in val])
        meas = np.array([m for _, m in val])
        raw, loo = error_stats(pred, meas), error_stats(loo_corrected(pred, meas), meas)
        report = {"n": len(val), "raw": raw, "corrected_loo": loo, "corrected": loo["mape"] < raw["mape"]}
        if report["corrected"]:
            a, b = fit_correction(pred, meas)
            meta["correction"] = {"a": a, "b": b, "fitted_on": len(val), "loo_mape": loo["mape"]}
        best = loo if report["corrected"] else raw
        meta["validation"] = {"n": len(val), "mape": best["mape"], "max_abs_pct_err": best["max_abs_pct_err"],
                              "spearman": best["spearman"], "corrected": report["corrected"],
                              "raw_mape": raw["mape"]}
    return LatencyTable(table.frame, meta), report
