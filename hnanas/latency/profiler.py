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
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hnanas.errors import HnanasError
from hnanas.fileio import read_json, write_json, write_text
from hnanas.latency.entries import CONTEXT_VERSION, KEY_COLUMNS, Entry, context_model, reorder_entry, space_entries
from hnanas.latency.runner import profile_entry
from hnanas.progress import progress
from hnanas.runtime import _provider_list, check_device, export_onnx, get_device
from hnanas.space import SearchSpace

log = logging.getLogger(__name__)
VALUE_COLUMNS = ["median_ms", "p10_ms", "p90_ms", "n"]
EXTRA_COLUMNS = ["in_layout", "out_layout", "nodes"]


@dataclass(frozen=True)
class ProfileSettings:
    """How entries are measured (recorded in the table's sidecar)."""

    device: str = "cpu"  # a name in hnanas.runtime.DEVICES
    threads: int = 1  # ONNX Runtime intra-op threads
    opt_level: str = "all"  # graph optimisation level (ORT_ENABLE_ALL, as deployed)
    warmup: int = 2  # untimed runs per session
    runs: int = 4  # at least this many timed runs per session ...
    min_time_s: float = 0.05  # ... and at least this much timed run time (small entries get more runs)
    sessions: int = 2  # fresh sessions per entry (their spread exceeds the run-to-run spread)
    fp16: bool = False  # TensorRT fp16 (jetson)


def _settings_key(space: SearchSpace, s: ProfileSettings) -> dict:
    import onnxruntime as ort

    return {"space": space.name, "space_hash": space.hash, "onnxruntime": ort.__version__,
            "context_version": CONTEXT_VERSION, **asdict(s)}


def measure_entry(entry: Entry, space: SearchSpace, settings: ProfileSettings, workdir: Path) -> list[dict]:
    """Export ``entry``'s context model and time it; returns its table row(s) (a reorder context times both
    directions, so it returns the rows of ``to_nchw`` and ``to_nchwc`` of that shape)."""
    model, examples = context_model(entry, space)
    path = workdir / "context.onnx"
    export_onnx(model, tuple(examples), path, dynamo=False, output_name="ctx_post_out", constant_folding=False)
    providers = _provider_list(get_device(settings.device), fp16=settings.fp16)
    r = profile_entry(str(path), providers, settings.threads, settings.opt_level, settings.warmup, settings.runs,
                      settings.min_time_s, settings.sessions)
    if entry.kind == "reorder":
        rows = []
        for layout, key in (("nchw", "reorder_in_ms"), ("nchwc", "reorder_out_ms")):
            e = reorder_entry(layout, entry.c_in, entry.h, entry.w)
            rows.append({**e.row(), "median_ms": r[key], "p10_ms": r[key], "p90_ms": r[key], "n": r["n"],
                         "in_layout": "", "out_layout": "", "nodes": 0})
        return rows
    return [{**entry.row(), **{k: r[k] for k in VALUE_COLUMNS + EXTRA_COLUMNS}}]


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


def measure_space(space: SearchSpace, out: Path, settings: ProfileSettings, *, entries: list[Entry] | None = None,
                  fresh: bool = False, checkpoint_s: float = 10.0) -> pd.DataFrame:
    """Measure all ``entries`` (default: every entry of ``space``), resuming from ``<out>.partial.csv``.
    Returns the rows as a DataFrame (key columns, median/p10/p90 ms, n)."""
    check_device(settings.device, fp16=settings.fp16)
    entries = entries if entries is not None else space_entries(space)
    key = _settings_key(space, settings)
    if fresh:
        for p in _partial_paths(out):
            p.unlink(missing_ok=True)
    rows = _load_partial(out, key)
    done = {Entry(**{c: r[c] for c in KEY_COLUMNS}).key for r in rows}
    todo = [e for e in entries if e.key not in done]
    last = time.monotonic()
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None  # models are written and read per entry
    with tempfile.TemporaryDirectory(prefix="hnanas-profile-", dir=scratch) as tmp, \
            progress(total=len(entries), initial=len(entries) - len(todo), desc=f"profile {space.name}",
                     unit="entry") as bar:
        for entry in todo:
            if entry.key in done:  # measured together with its twin (reorder pairs)
                continue
            new = measure_entry(entry, space, settings, Path(tmp))
            rows += new
            done |= {Entry(**{c: r[c] for c in KEY_COLUMNS}).key for r in new}
            bar.update(len(new))
            if time.monotonic() - last > checkpoint_s:
                _save_partial(out, rows, key)
                last = time.monotonic()
    _save_partial(out, rows, key)
    frame = pd.DataFrame(rows)
    wanted = {e.key for e in entries}
    keep = [Entry(**{c: r[c] for c in KEY_COLUMNS}).key in wanted for r in rows]
    return frame[np.asarray(keep, dtype=bool)].reset_index(drop=True)


def finish_partial(out: Path) -> None:
    for p in _partial_paths(out):
        p.unlink(missing_ok=True)


def measure_network(model_bytes: bytes, device: str, threads: int, *, sessions: int = 3,
                    min_time_s: float = 0.5) -> float:
    """End-to-end latency of a whole network: the median over ``sessions`` fresh sessions of each session's
    median run time (a single session can land 5-10 % off on a shared machine)."""
    from hnanas.runtime import make_session, time_session

    meds = [time_session(make_session(model_bytes, device, threads=threads), min_repeats=10,
                         min_time_s=min_time_s).median_ms for _ in range(sessions)]
    return float(np.median(meds))


def export_network(space: SearchSpace, genotype) -> bytes:
    """The deploy-form ONNX model of a derived network at the deployment size, exported as users deploy it."""
    import torch

    from hnanas.network import derive

    net = derive(space, genotype, deploy=True).eval()
    return export_onnx(net, torch.randn(1, space.input_channels, *space.deploy_size), dynamo=True)


def provenance(space: SearchSpace, settings: ProfileSettings) -> dict:
    """Everything a table says about how and where it was measured."""
    import onnx
    import onnxruntime as ort

    from hnanas.envinfo import environment
    from hnanas.runtime import OPSET, make_session, session_settings, tiny_conv_model

    env = environment()
    sess = make_session(tiny_conv_model(), settings.device, threads=settings.threads, fp16=settings.fp16)
    return {
        "space": space.name, "space_hash": space.hash, "space_source": space.source,
        **session_settings(sess, settings.device, settings.threads, settings.opt_level),
        "onnx": onnx.__version__, "onnxruntime": ort.__version__, "opset": OPSET,
        "cpu_model": env["cpu_model"], "cpu_physical_cores": env["cpu_physical_cores"],
        "cpu_logical_cores": env["cpu_logical_cores"], "memory_gb": env["memory_gb"], "platform": env["platform"],
        "host": env["host"], "date": env["date"], "hnanas": env["hnanas"], "allocator": env["ld_preload"] or "libc",
        "method": "profile", "context_version": CONTEXT_VERSION, "measurement": asdict(settings),
    }


def calibration_networks(space: SearchSpace, n_random: int = 6) -> dict:
    """Networks that calibrate a table: the space's named reference networks, the smallest network the space
    allows (the output fed straight from the stem), and ``n_random`` random ones (seeded apart from the
    validation networks), so calibration spans the space's range of sizes."""
    from hnanas.genotype import make_genotype, named_genotypes, prune, sample_genotype

    nets = dict(named_genotypes(space))
    inputs = {n.id: (n.candidates[-1],) for n in space.nodes}  # the last candidate: column 0 of the level
    try:
        nets["smallest"] = make_genotype(space, prune(space, inputs), space.stage1_op, name="smallest")
    except Exception:  # noqa: BLE001 - a space without such a path simply has no "smallest" reference
        pass
    for k in range(n_random):
        g = sample_genotype(space, 100_000 + k)
        nets[g.name] = g
    return nets


def calibrate(table, space: SearchSpace, settings: ProfileSettings) -> dict:
    """Fit ``measured = factor * sum(entries) + overhead`` on :func:`calibration_networks` (least squares on
    relative error) and store both in the table's sidecar; returns the per-network data."""
    from hnanas.latency.validate import fit_correction

    nets = {}
    for name, g in progress(list(calibration_networks(space).items()), desc="calibrate", unit="net"):
        measured = measure_network(export_network(space, g), settings.device, settings.threads)
        nets[name] = {"measured_ms": measured, "entries_ms": table.entries_sum(g, space)}
    pred = np.array([v["entries_ms"] for v in nets.values()])
    meas = np.array([v["measured_ms"] for v in nets.values()])
    factor, overhead = fit_correction(pred, meas)
    table.meta.update(network_factor=factor, fixed_overhead_ms=overhead, calibration_networks=nets)
    return nets


def profile_space(space: SearchSpace, out: Path, settings: ProfileSettings, *, fresh: bool = False):
    """Measure the whole table of ``space`` on ``settings.device``, calibrate its network factor and fixed
    overhead on whole networks, and write ``out`` (CSV) with its JSON sidecar. Returns the table."""
    from hnanas.latency.table import FORMAT, LatencyTable

    t0 = time.monotonic()
    frame = measure_space(space, out, settings, fresh=fresh)
    table = LatencyTable(frame, {"format": FORMAT, **provenance(space, settings)})
    calibrate(table, space, settings)
    table.meta["profile_seconds"] = round(time.monotonic() - t0, 1)
    table.meta["n_entries"] = int(len(frame))
    table.save(out)
    finish_partial(out)
    return table
