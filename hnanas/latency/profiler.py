"""``hnanas profile``: measure every entry of a space's latency table on a device with ONNX Runtime.

Each entry is exported in its context (``entries.context_model``) and timed by ``runner.profile_entry``: the
entry's own node times from ORT's profiler, so per-run overhead and the context's boundary layout reorders are
not charged to it. One fixed overhead per network (session run, input/output conversions) is then measured on
reference networks of the space: end-to-end time minus the sum of their entries.

Profiling is resumable: measured rows are checkpointed (atomically) to ``<out>.partial.csv`` with their settings,
and a rerun with the same settings continues where the last one stopped.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import torch

from hnanas.envinfo import environment
from hnanas.errors import HnanasError
from hnanas.fileio import read_json, sha256_bytes, stable_hash, write_json, write_text
from hnanas.latency.correction import fit_correction
from hnanas.latency.e2e import entry_times, identity_entries
from hnanas.latency.entries import (CONTEXT_VERSION, KEY_COLUMNS, Entry, context_model, layout_variants, reorder_entry,
                                    space_entries)
from hnanas.latency.runner import profile_entry, time_model
from hnanas.latency.table import FORMAT, LatencyTable
from hnanas.nas.genotype import make_genotype, named_genotypes, prune, sample_genotype
from hnanas.nas.network import derive
from hnanas.nas.space import SearchSpace
from hnanas.progress import progress
from hnanas.runtime import (OPSET, _provider_list, check_device, export_onnx, get_device, make_session,
                            session_settings, time_session, tiny_conv_model)

log = logging.getLogger(__name__)
VALUE_COLUMNS = ["median_ms", "p10_ms", "p90_ms", "n"]
EXTRA_COLUMNS = ["in_layout", "out_layout", "nodes"]


@dataclass(frozen=True)
class ProfileSettings:
    """How entries are measured (recorded in the table's sidecar)."""

    device: str = "cpu"  # a name in hnanas.runtime.DEVICES
    threads: int = 1  # ONNX Runtime intra-op threads
    opt_level: str = "all"  # graph optimisation level (ORT_ENABLE_ALL, as deployed)
    warmup: int = 1  # untimed runs per session (a second one changed medians by 0.2 %, within repeat noise)
    runs: int = 4  # at least this many timed runs per session ...
    min_time_s: float = 0.025  # ... and at least this much timed run time (small entries get more runs; 0.05
    #                            changed medians by 0.2 % on 50 entries, within repeat noise, and took 40 % longer)
    sessions: int = 2  # passes over the table: entries >= 0.5 ms get one fresh session per pass, minutes apart
    fp16: bool = False  # TensorRT fp16 (jetson)


def _settings_key(space: SearchSpace, s: ProfileSettings) -> dict:
    import onnxruntime as ort

    return {"space": space.name, "space_hash": space.hash, "onnxruntime": ort.__version__,
            "context_version": CONTEXT_VERSION, **asdict(s)}


def export_context(entry: Entry, space: SearchSpace, path: Path) -> Path:
    """Write ``entry``'s context model to ``path`` (once; later passes reuse the file)."""
    if not path.exists():
        model, examples = context_model(entry, space)
        export_onnx(model, tuple(examples), path, dynamo=False, output_name="ctx_post_out", constant_folding=False)
    return path


def per_node_profiles(device: str) -> bool:
    """Whether the device's provider reports real per-node times (the CPU EP); else entries are timed end to end
    (``e2e.py``)."""
    return get_device(device).providers[0] == "CPUExecutionProvider"


def measure_entry(entry: Entry, space: SearchSpace, settings: ProfileSettings, workdir: Path) -> list[dict]:
    """Time ``entry`` in one fresh session; returns its table row(s) (a reorder context times both directions,
    so it returns the rows of ``to_nchw`` and ``to_nchwc`` of that shape)."""
    providers = _provider_list(get_device(settings.device), fp16=settings.fp16)
    e2e = not per_node_profiles(settings.device)
    if entry.kind == "reorder" and e2e:  # no layout model on these providers
        return _reorder_rows(entry, {"nchw": 0.0, "nchwc": 0.0}, n=0)
    path = export_context(entry, space, workdir / f"{sha256_bytes(entry.key.encode())[:16]}.onnx")
    if e2e:
        r = time_model(str(path), providers, settings.threads, settings.opt_level, settings.warmup,
                       max(settings.runs, 10), settings.min_time_s)
        return [{**entry.row(), **{k: r[k] for k in VALUE_COLUMNS}, "in_layout": "", "out_layout": "", "nodes": 0,
                 "sessions": 1}]
    r = profile_entry(str(path), providers, settings.threads, settings.opt_level, settings.warmup, settings.runs,
                      settings.min_time_s, sessions=1)
    if entry.kind == "reorder":
        return _reorder_rows(entry, {"nchw": r["reorder_in_ms"], "nchwc": r["reorder_out_ms"]}, n=r["n"])
    return [{**entry.row(), **{k: r[k] for k in VALUE_COLUMNS + EXTRA_COLUMNS}, "sessions": 1}]


def _reorder_rows(entry: Entry, ms: dict[str, float], n: int) -> list[dict]:
    """The ``to_nchw`` and ``to_nchwc`` rows of a reorder context's shape, from the time of each direction
    (keyed by the layout converted to)."""
    return [{**reorder_entry(layout, entry.c_in, entry.h, entry.w).row(), "median_ms": t, "p10_ms": t, "p90_ms": t,
             "n": n, "in_layout": "", "out_layout": "", "nodes": 0, "sessions": 1} for layout, t in ms.items()]


def merge_session(old: dict, new: dict) -> dict:
    """Combine two sessions of one entry: the lower session median (a session that ran while the shared machine
    was busy is slow as a whole), the widest percentiles, the runs added up."""
    return {**old, "median_ms": min(old["median_ms"], new["median_ms"]), "p10_ms": min(old["p10_ms"], new["p10_ms"]),
            "p90_ms": max(old["p90_ms"], new["p90_ms"]), "n": old["n"] + new["n"], "sessions": old["sessions"] + 1}


def _partial_paths(out: Path) -> tuple[Path, Path]:
    return out.with_suffix(".partial.csv"), out.with_suffix(".partial.json")


def _load_partial(out: Path, settings_key: dict) -> list[dict]:
    csv_path, json_path = _partial_paths(out)
    if not csv_path.exists():
        return []
    saved = read_json(json_path) if json_path.exists() else {}
    if saved != settings_key:
        diff = sorted(k for k in set(saved) | set(settings_key) if saved.get(k) != settings_key.get(k))
        raise HnanasError(f"{csv_path}: an interrupted profile with other settings ({', '.join(diff)}) is in the "
                          f"way; delete it or rerun with --fresh")
    rows = pd.read_csv(csv_path, keep_default_na=False).to_dict("records")
    log.info("resuming: %d entries already measured in %s", len(rows), csv_path)
    return rows


def _save_partial(out: Path, rows: list[dict], settings_key: dict) -> None:
    csv_path, json_path = _partial_paths(out)
    write_json(json_path, settings_key)
    write_text(csv_path, pd.DataFrame(rows).to_csv(index=False))


def _key(row: dict) -> str:
    return Entry(**{c: row[c] for c in KEY_COLUMNS}).key


def measure_space(space: SearchSpace, out: Path, settings: ProfileSettings, *, entries: list[Entry] | None = None,
                  fresh: bool = False, checkpoint_s: float = 10.0, more_above_ms: float = 0.5) -> pd.DataFrame:
    """Measure all ``entries`` (default: every entry of ``space``) in ``settings.sessions`` passes, resuming from
    ``<out>.partial.csv``: pass 1 times every entry once; each later pass times again, in a fresh session
    minutes later, the entries of at least ``more_above_ms`` (small ones are many, and their errors average out
    in a network). An entry keeps its lowest session median: on a shared machine a session that runs during a
    busy spell is slow as a whole, and back-to-back sessions share the spell. Layout-following entries that ran
    blocked are measured again on plain inputs (``entries.layout_variants``). Returns the rows (key columns,
    median/p10/p90 ms, n, layouts)."""
    check_device(settings.device, fp16=settings.fp16)
    entries = entries if entries is not None else space_entries(space)
    e2e = not per_node_profiles(settings.device)
    if e2e:
        entries = entries + identity_entries(entries)
    key = _settings_key(space, settings)
    if fresh:
        for p in _partial_paths(out):
            p.unlink(missing_ok=True)
    rows = {_key(r): r for r in _load_partial(out, key)}
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    models = scratch / f"hnanas-profile-{space.hash}-{stable_hash(key)}"
    models.mkdir(exist_ok=True)
    last = time.monotonic()
    for p in range(settings.sessions):
        while True:  # the entries, then the NCHW variants of those that turned out to follow their input's layout
            todo = [e for e in entries + layout_variants(rows.values())
                    if (rows[e.key]["sessions"] <= p and rows[e.key]["median_ms"] >= more_above_ms
                        if e.key in rows else True)]
            todo = [e for e in todo if not (e.kind == "reorder" and e.name == "to_nchwc")]  # timed with its twin
            if not todo:
                break
            with progress(todo, desc=f"profile {space.name} (pass {p + 1}/{settings.sessions})", unit="entry") as bar:
                for entry in bar:
                    for r in measure_entry(entry, space, settings, models):
                        rows[_key(r)] = merge_session(rows[_key(r)], r) if _key(r) in rows else r
                    if time.monotonic() - last > checkpoint_s:
                        _save_partial(out, list(rows.values()), key)
                        last = time.monotonic()
            _save_partial(out, list(rows.values()), key)
    shutil.rmtree(models, ignore_errors=True)
    wanted = {e.key for e in entries + layout_variants(rows.values())}
    frame = pd.DataFrame([r for k, r in rows.items() if k in wanted]).reset_index(drop=True)
    if e2e:
        frame["median_ms"] = entry_times(frame)
        frame = frame[frame.kind != "identity"].reset_index(drop=True)
    return frame


def finish_partial(out: Path) -> None:
    for p in _partial_paths(out):
        p.unlink(missing_ok=True)


def measure_networks(models: dict, device: str, threads: int, *, rounds: int = 3, min_time_s: float = 0.4,
                     desc: str = "measure", agree: float | None = None, max_rounds: int | None = None) -> dict:
    """End-to-end latency of whole networks, measured like table entries: ``rounds`` rounds over all networks
    (one fresh session each), so a busy spell of the shared machine hits each network in one round at most; a
    network's latency is its lowest session median. With ``agree`` (a fraction), further rounds (up to
    ``max_rounds`` in all) time again the networks whose two fastest sessions still differ by more than that, so
    one slow spell cannot set a network's time."""
    times: dict = {name: [] for name in models}
    todo = list(models)
    limit = max(rounds, max_rounds or rounds)
    with progress(total=rounds * len(models), desc=desc, unit="session") as bar:
        for r in range(limit):
            if r >= rounds:
                todo = [n for n in todo if agree is not None and not sessions_agree(times[n], agree)]
                if not todo:
                    break
                bar.total += len(todo)
                bar.refresh()
            for name in todo:
                t = time_session(make_session(models[name], device, threads=threads), min_repeats=10,
                                 min_time_s=min_time_s)
                times[name].append(t.median_ms)
                bar.update()
    return {name: min(ts) for name, ts in times.items()}


def sessions_agree(times: list[float], tol: float) -> bool:
    """Whether the two fastest of ``times`` are within ``tol`` (a fraction) of each other."""
    low = sorted(times)[:2]
    return len(low) == 2 and low[1] <= low[0] * (1 + tol)


def measure_network(model_bytes: bytes, device: str, threads: int, rounds: int = 3) -> float:
    """One network's latency (see :func:`measure_networks`)."""
    return measure_networks({"net": model_bytes}, device, threads, rounds=rounds)["net"]


def export_network(space: SearchSpace, genotype) -> bytes:
    """The deploy-form ONNX model of a derived network at the deployment size, exported as users deploy it."""
    net = derive(space, genotype, deploy=True).eval()
    return export_onnx(net, torch.randn(1, space.input_channels, *space.deploy_size), dynamo=True)


def provenance(space: SearchSpace, settings: ProfileSettings) -> dict:
    """Everything a table says about how and where it was measured."""
    env = environment()
    sess = make_session(tiny_conv_model(), settings.device, threads=settings.threads, fp16=settings.fp16)
    return {
        "space": space.name, "space_hash": space.hash, "space_source": space.source,
        **session_settings(sess, settings.device, settings.threads, settings.opt_level),
        "onnx": onnx.__version__, "onnxruntime": ort.__version__, "opset": OPSET,
        "cpu_model": env["cpu_model"], "cpu_identity": env["cpu_identity"], "cpu_physical_cores": env["cpu_physical_cores"],
        "cpu_logical_cores": env["cpu_logical_cores"], "memory_gb": env["memory_gb"], "platform": env["platform"],
        "host": env["host"], "date": env["date"], "hnanas": env["hnanas"], "allocator": env["ld_preload"] or "libc",
        "method": "profile" if per_node_profiles(settings.device) else "e2e", "context_version": CONTEXT_VERSION,
        "measurement": asdict(settings),
    }


def calibration_networks(space: SearchSpace, n_random: int = 6) -> dict:
    """Networks that calibrate a table: the space's named reference networks, the smallest network the space
    allows (the output fed straight from the stem), and ``n_random`` random ones (seeded apart from the
    validation networks), so calibration spans the space's range of sizes."""
    nets = dict(named_genotypes(space))
    inputs = {n.id: (n.candidates[-1],) for n in space.nodes}  # the last candidate: column 0 of the level
    try:
        nets["smallest"] = make_genotype(space, prune(space, inputs), space.stage1_op, name="smallest")
    except Exception:  # noqa: BLE001 - a space without such a path simply has no "smallest" reference
        pass
    for k in range(n_random):
        g = sample_genotype(space, calibration_seed(k))
        nets[g.name] = g
    return nets


def calibration_seed(k: int) -> int:
    """The seed of the ``k``-th random calibration network: 100 000 + k, apart from the networks ``profile
    validate`` draws (:func:`hnanas.latency.validate.validation_seed`, below 100 000 for seeds under 100)."""
    return 100_000 + k


def calibrate(table, space: SearchSpace, graphs: dict, measured: dict) -> dict:
    """Fit ``measured = factor * sum(entries) + overhead`` on the calibration networks ``graphs`` (name ->
    genotype, :func:`calibration_networks`; ``measured``: name -> end-to-end ms), by least squares on relative
    error, and store both in the table's sidecar; returns the per-network data."""
    nets = {name: {"measured_ms": measured[name], "entries_ms": table.entries_sum(g, space)}
            for name, g in graphs.items()}
    pred = np.array([v["entries_ms"] for v in nets.values()])
    meas = np.array([v["measured_ms"] for v in nets.values()])
    factor, overhead = fit_correction(pred, meas)
    table.meta.update(network_factor=factor, fixed_overhead_ms=overhead, calibration_networks=nets)
    return nets


def profile_space(space: SearchSpace, out: Path, settings: ProfileSettings, *, fresh: bool = False):
    """Measure the whole table of ``space`` on ``settings.device``, calibrate its network factor and fixed
    overhead on whole networks, and write ``out`` (CSV) with its JSON sidecar. Returns the table.

    The calibration networks are timed once before the entries and twice after, each keeping its fastest
    session, like the entries: timed only in the minute after the profile, a slow spell of the shared machine
    (up to +34 % seen) skews the factor of the whole table."""
    t0 = time.monotonic()
    graphs = calibration_networks(space)
    models = {name: export_network(space, g) for name, g in graphs.items()}
    before = measure_networks(models, settings.device, settings.threads, rounds=1, desc="calibrate (before)")
    frame = measure_space(space, out, settings, fresh=fresh)
    after = measure_networks(models, settings.device, settings.threads, rounds=2, desc="calibrate (after)")
    table = LatencyTable(frame, {"format": FORMAT, **provenance(space, settings)})
    calibrate(table, space, graphs, {k: min(before[k], after[k]) for k in models})
    table.meta["profile_seconds"] = round(time.monotonic() - t0, 1)
    table.meta["n_entries"] = int(len(frame))
    table.save(out)
    finish_partial(out)
    return table
