"""``hnanas profile quick``: price *this* machine in minutes by re-fitting a measured table on its networks.

A full profile times every entry of a space (thousands, about 10 minutes). A table measured on another CPU
mispredicts this one by tens of percent, and not by one factor: vector width, cache sizes and ONNX Runtime's
kernels change the cost of each kind of op differently (grouped and depthwise convolutions, dense 3x3, layout
conversions, resizes). The transfer keeps the base table's *structure* (which entries a network runs, in which
layout) and re-fits its *scale* per group of entries (one group per op, concat, resample kind, layout
conversion, head) on whole networks timed here:

1. reference networks (:func:`reference_networks`): the space's named networks, the smallest one and
   ``n_random`` random mixed ones, drawn like the networks a search meets (palettes of one op to all of them,
   so each op's scale stays identifiable). Networks made of one op on DNANet's full topology scaled ~10 % more
   than random networks between two CPUs and set a common scale too high (``docs/results.md``), so they are not
   references;
2. each is exported (TorchScript exporter, ~50x faster than the deployment exporter and timed like it, see
   ``docs/results.md``) and timed end to end, fastest of at least ``rounds`` fresh sessions in interleaved
   rounds, repeated (up to ``max_rounds``) until its two fastest sessions agree within ``agree``;
3. ``measured ~ sum_g scale_g * entries_g + overhead``, least squares on relative error with the group scales
   pulled towards one common scale (ridge; its strength chosen by leave-one-out error over the references);
4. the base table's rows are multiplied by their group's scale and written with this machine's provenance and
   ``method: transfer`` (the fit, the references and their errors in the sidecar).

``hnanas profile validate`` then judges the result on random networks exported as deployed.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from scipy.optimize import lsq_linear

from hnanas.envinfo import environment
from hnanas.latency import machine
from hnanas.latency.matched import draw_genotype
from hnanas.latency.profiler import calibration_networks, measure_networks
from hnanas.latency.table import LatencyTable
from hnanas.nas.genotype import Genotype
from hnanas.nas.network import derive
from hnanas.nas.space import SearchSpace
from hnanas.progress import progress
from hnanas.runtime import export_onnx

RIDGE_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


@dataclass(frozen=True)
class TransferSettings:
    """How the reference networks are drawn and timed (recorded in the sidecar)."""

    device: str = "cpu"
    threads: int = 1
    n_random: int = 20  # random mixed networks besides the named and smallest ones
    rounds: int = 2  # fresh sessions per reference network at least (the fastest counts)
    max_rounds: int = 5  # ... and at most, while its two fastest sessions differ by more than ``agree``
    agree: float = 0.03
    seed: int = 0  # of the references' topologies (kept apart from validation's seeds)


def entry_group(kind: str, name: str) -> str:
    """The group an entry's scale is fitted in: ops by name, resamples by name and input layout, concats by
    input layout, both layout conversions together, the head alone."""
    if kind == "op":
        return f"op:{name}"
    if kind == "reorder":
        return "reorder"
    return f"{kind}:{name}"


def row_groups(table: LatencyTable) -> list[str]:
    return [entry_group(k, n) for k, n in zip(table.frame["kind"], table.frame["name"])]


def group_tables(table: LatencyTable) -> dict[str, LatencyTable]:
    """One copy of ``table`` per group, with every other group's entries at 0 ms and no calibration: its
    prediction of a network is the network's milliseconds in that group (layout choices are unchanged, they do
    not depend on the times)."""
    groups = np.array(row_groups(table))
    meta = {k: v for k, v in table.meta.items() if k not in ("correction", "network_factor", "fixed_overhead_ms")}
    out = {}
    for g in sorted(set(groups)):
        frame = table.frame.copy()
        frame.loc[groups != g, "median_ms"] = 0.0
        out[g] = LatencyTable(frame, meta, table.path)
    return out


def group_matrix(table: LatencyTable, space: SearchSpace, graphs: dict[str, Genotype]) -> tuple[list[str], np.ndarray]:
    """(group names, matrix networks x groups of the base table's raw entry milliseconds)."""
    parts = group_tables(table)
    names = list(parts)
    x = np.array([[parts[g].predict(geno, space).raw_ms for g in names] for geno in graphs.values()])
    return names, x


def reference_seed(seed: int) -> int:
    """The seed of the random reference networks of transfer ``seed``: 2 000 000 + seed, apart from the
    calibration (:func:`hnanas.latency.profiler.calibration_seed`) and validation networks' seeds."""
    return 2_000_000 + seed


def reference_networks(space: SearchSpace, settings: TransferSettings) -> dict[str, Genotype]:
    """The networks the scales are fitted on: named ones, the smallest and ``n_random`` random mixed ones
    (:func:`hnanas.latency.matched.draw_genotype`), seeded apart from validation's networks."""
    nets = dict(calibration_networks(space, n_random=0))
    rng = random.Random(reference_seed(settings.seed))
    seen, mixed = {g.nodes for g in nets.values()}, 0
    for _ in range(100 * settings.n_random):  # distinct networks (a small space repeats draws)
        if mixed == settings.n_random:
            break
        g = draw_genotype(space, rng, name=f"mixed_{mixed}")
        if g.nodes not in seen:
            seen.add(g.nodes)
            nets[g.name] = g
            mixed += 1
    return nets


def _design(x: np.ndarray, meas: np.ndarray) -> np.ndarray:
    """Rows of the relative-error least squares: (x_g / m, 1 / m) against 1."""
    return np.hstack([x / meas[:, None], 1.0 / meas[:, None]])


def fit_scales(x: np.ndarray, meas: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    """Group scales (>= 0) and overhead minimising sum(((x s + b) / m - 1)^2) + ridge * sum_g w_g (s_g - c)^2,
    with c the best single common scale and w_g each group's share of the references' time (a group the
    references barely use stays near c)."""
    a = _design(x, meas)
    common = lsq_linear(_design(x.sum(axis=1, keepdims=True), meas), np.ones_like(meas)).x[0]
    share = x.sum(axis=0) / x.sum()
    w = np.sqrt(ridge * len(meas) * np.maximum(1.0 - share, 0.0))
    reg = np.hstack([np.diag(w), np.zeros((len(w), 1))])
    lhs = np.vstack([a, reg])
    rhs = np.concatenate([np.ones_like(meas), w * common])
    lo = np.concatenate([np.zeros(x.shape[1]), [-0.5 * meas.min()]])
    hi = np.concatenate([np.full(x.shape[1], np.inf), [meas.min()]])
    sol = lsq_linear(lhs, rhs, bounds=(lo, hi)).x
    return sol[:-1], float(sol[-1])


def loo_mape(x: np.ndarray, meas: np.ndarray, ridge: float) -> float:
    """Leave-one-out mean absolute percentage error of :func:`fit_scales` over the references."""
    errs = []
    for i in range(len(meas)):
        keep = np.arange(len(meas)) != i
        s, b = fit_scales(x[keep], meas[keep], ridge)
        errs.append(abs((x[i] @ s + b) / meas[i] - 1.0))
    return float(np.mean(errs) * 100)


def choose_ridge(x: np.ndarray, meas: np.ndarray) -> tuple[float, dict[float, float]]:
    """The ridge strength of :data:`RIDGE_GRID` with the lowest leave-one-out error (ties: the stronger)."""
    errors = {r: loo_mape(x, meas, r) for r in RIDGE_GRID}
    best = min(errors.values())
    return max(r for r, e in errors.items() if e <= best + 1e-9), errors


def scaled_table(base: LatencyTable, groups: list[str], scales: np.ndarray, overhead: float, meta: dict
                 ) -> LatencyTable:
    """``base`` with each row's times multiplied by its group's scale, calibrated to factor 1 + ``overhead``."""
    factor = dict(zip(groups, scales))
    mult = np.array([factor[g] for g in row_groups(base)])
    frame = base.frame.copy()
    for col in ("median_ms", "p10_ms", "p90_ms"):
        if col in frame:
            frame[col] = frame[col].astype(float) * mult
    return LatencyTable(frame, {**meta, "network_factor": 1.0, "fixed_overhead_ms": overhead}, None)


def transfer_table(base: LatencyTable, space: SearchSpace, settings: TransferSettings, measure) -> LatencyTable:
    """The transferred table of ``base`` for this machine. ``measure(graphs) -> {name: ms}`` times the reference
    networks (:func:`measure_references` in use; injectable for tests)."""
    t0 = time.monotonic()
    graphs = reference_networks(space, settings)
    measured = measure(graphs)
    meas = np.array([measured[n] for n in graphs])
    groups, x = group_matrix(base, space, graphs)
    ridge, errors = choose_ridge(x, meas)
    scales, overhead = fit_scales(x, meas, ridge)
    fitted = x @ scales + overhead
    meta = {k: v for k, v in base.meta.items() if k not in ("correction", "validation", "calibration_networks")}
    meta.update(transfer_provenance(settings))
    meta["transfer"] = {
        "base_table": str(base.path or ""), "base_cpu_model": base.meta.get("cpu_model"),
        "base_cpu_identity": base.meta.get("cpu_identity"), "base_date": base.meta.get("date"),
        "base_onnxruntime": base.meta.get("onnxruntime"), "settings": asdict(settings),
        "ridge": ridge, "loo_mape_by_ridge": {str(k): v for k, v in errors.items()}, "loo_mape": errors[ridge],
        "scales": dict(zip(groups, map(float, scales))), "overhead_ms": overhead,
        "references": {n: {"measured_ms": float(m), "base_raw_ms": float(base.predict(g, space).raw_ms),
                           "fitted_ms": float(f)} for (n, g), m, f in zip(graphs.items(), meas, fitted)},
        "seconds": round(time.monotonic() - t0, 1),
    }
    return scaled_table(base, groups, scales, overhead, meta)


def transfer_provenance(settings: TransferSettings) -> dict:
    """This machine's entries of a table's sidecar (what a transfer overwrites in the base table's)."""
    env = environment()
    return {"cpu_model": env["cpu_model"], "cpu_identity": env["cpu_identity"], "onnxruntime": ort.__version__,
            "cpu_physical_cores": env["cpu_physical_cores"], "cpu_logical_cores": env["cpu_logical_cores"],
            "memory_gb": env["memory_gb"], "platform": env["platform"], "host": env["host"], "date": env["date"],
            "hnanas": env["hnanas"], "allocator": env["ld_preload"] or "libc", "method": "transfer",
            "device": settings.device, "threads": settings.threads}


def measure_references(space: SearchSpace, settings: TransferSettings):
    """The ``measure`` of :func:`transfer_table`: export each network (TorchScript exporter) and time it
    end to end like validation does (interleaved rounds, fastest session)."""
    def measure(graphs: dict[str, Genotype]) -> dict[str, float]:
        models = {}
        example = torch.randn(1, space.input_channels, *space.deploy_size)
        for name, g in progress(graphs.items(), total=len(graphs), desc="export", unit="net"):
            models[name] = export_onnx(derive(space, g, deploy=True).eval(), example, dynamo=False)
        return measure_networks(models, settings.device, settings.threads, rounds=settings.rounds,
                                max_rounds=settings.max_rounds, agree=settings.agree,
                                desc="time references")
    return measure


def transfer_status(base_path: Path, out: Path, settings: TransferSettings) -> tuple[bool, str]:
    """Whether :func:`quick_profile` has work to do, and why (one line, empty when there is nothing to say).

    Nothing to do when ``out`` is this machine's transfer of ``base_path`` with the same settings, or when
    ``base_path`` itself was measured here. A transfer made with other settings (an earlier hnanas, other
    references) is redone."""
    why = ""
    if out.is_file():
        meta = LatencyTable.load(out).meta
        done = meta.get("transfer", {})
        if machine.measured_here(meta) and done.get("base_table") == str(base_path):
            if done.get("settings") == asdict(settings):
                return False, f"this machine is already priced: {out} (from {base_path}; --force redoes it)"
            why = f"{out} was transferred with other settings (an earlier hnanas: {done.get('settings')}); redoing it"
    if machine.measured_here(LatencyTable.load(base_path).meta):
        return False, f"{base_path} was measured on this machine; nothing to transfer (--force transfers anyway)"
    return True, why


def quick_profile(base_path: Path, space: SearchSpace, out: Path, settings: TransferSettings) -> LatencyTable:
    """Transfer the table at ``base_path`` to this machine and write it to ``out``."""
    base = LatencyTable.load(base_path, space=space, device=settings.device)
    table = transfer_table(base, space, settings, measure_references(space, settings))
    table.save(out)
    return table
