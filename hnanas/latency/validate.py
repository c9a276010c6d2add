"""``hnanas profile validate``: how good is a table? Predicted vs measured latency of random whole networks.

N random genotypes of the table's space are derived, re-parameterised, exported as deployed (``dynamo=True``) and
measured end to end with the table's device and threads, in interleaved rounds (``measure_networks``). The report gives MAPE, the
largest error and Spearman's rho. A linear correction ``measured ~ a * predicted + b`` (fitted to minimise
relative error) is stored in the sidecar only if it lowers the error when judged out of sample (leave-one-out),
and the report says so; the corrected figures are leave-one-out figures, never in-sample ones.
"""

from __future__ import annotations

import logging

import numpy as np

from hnanas.latency.correction import error_stats, fit_correction, loo_corrected
from hnanas.latency.profiler import export_network, measure_networks
from hnanas.latency.table import LatencyTable
from hnanas.nas.genotype import sample_genotype
from hnanas.nas.space import SearchSpace
from hnanas.runtime import check_device

log = logging.getLogger(__name__)


def validation_seed(seed: int, k: int) -> int:
    """The genotype seed of the ``k``-th network of validation run ``seed``: seed * 1000 + k (runs of different
    seeds draw different networks while k < 1000)."""
    return seed * 1000 + k


def validate_table(table: LatencyTable, space: SearchSpace, n: int = 20, seed: int = 0,
                   allow_correction: bool = True) -> dict:
    """Measure ``n`` random networks, report predicted-vs-measured error and (maybe) store a correction in
    ``table.meta`` (the caller saves the table). Returns the JSON report."""
    device, threads = table.meta["device"], int(table.meta["threads"])
    check_device(device)
    graphs = [sample_genotype(space, validation_seed(seed, k)) for k in range(n)]
    measured = measure_networks({g.name: export_network(space, g) for g in graphs}, device, threads, desc="validate")
    nets = [{"genotype": g.name, "predicted_ms": table.predict(g, space).raw_ms, "measured_ms": measured[g.name]}
            for g in graphs]
    pred = np.array([x["predicted_ms"] for x in nets])
    meas = np.array([x["measured_ms"] for x in nets])
    raw = error_stats(pred, meas)
    report = {"n": n, "device": device, "threads": threads, "table": str(table.path or ""), "raw": raw,
              "networks": nets}
    corrected = False
    if allow_correction and n >= 5:
        loo = error_stats(loo_corrected(pred, meas), meas)
        report["corrected_loo"] = loo
        if loo["mape"] < raw["mape"]:
            a, b = fit_correction(pred, meas)
            table.meta["correction"] = {"a": a, "b": b, "fitted_on": n, "loo_mape": loo["mape"]}
            corrected = True
    if not corrected:  # the stored summary describes the table as it now predicts: without a correction
        table.meta.pop("correction", None)
    best = report["corrected_loo"] if corrected else raw
    report.update(mape=best["mape"], max_abs_pct_err=best["max_abs_pct_err"], spearman=best["spearman"],
                  corrected=corrected, correction=table.meta.get("correction"))
    table.meta["validation"] = {k: report[k] for k in ("n", "mape", "max_abs_pct_err", "spearman", "corrected")}
    table.meta["validation"]["raw_mape"] = raw["mape"]
    return report


def format_report(report: dict) -> str:
    raw = report["raw"]
    lines = [f"validated on {report['n']} random networks ({report['device']}, {report['threads']} thread(s))",
             f"  raw table:   MAPE {raw['mape']:.1f} %, max {raw['max_abs_pct_err']:.1f} %, "
             f"bias {raw['bias']:+.1f} %, Spearman {raw['spearman']:.3f}"]
    if "corrected_loo" in report:
        c = report["corrected_loo"]
        lines.append(f"  corrected (leave-one-out): MAPE {c['mape']:.1f} %, max {c['max_abs_pct_err']:.1f} %, "
                     f"Spearman {c['spearman']:.3f}")
    if report["corrected"]:
        k = report["correction"]
        lines.append(f"  {'stored' if report.get('stored', True) else 'fitted (not stored)'} correction: "
                     f"measured = {k['a']:.4f} * predicted + {k['b']:.3f} ms")
    else:
        lines.append("  no correction stored (it did not lower the out-of-sample error)")
    return "\n".join(lines)
