"""Search vs random at the same latency: the per-network table and the verdict, from retrain results.

Input rows are one per (network, seed): ``net``, ``role`` (``searched``, ``random``, ``ablation`` or
``baseline``), ``seed`` and the test metrics ``iou``, ``niou``, ``pd``, ``fa`` (fractions) of that retrain.
:func:`summarise_networks` gives each network's mean and sample standard deviation over its seeds;
:func:`search_vs_random` adds the verdict for IoU and nIoU (:func:`hnanas.report.stats.versus_random`: the
searched network's percentile among the random networks, how many it beats, the gap to their mean in pooled seed
standard deviations, a bootstrap 95 % interval of the gap) and the same figures for the ablation.
:func:`versus_markdown` formats it; ``bench/search_vs_random.py`` writes it next to its runs and ``hnanas report``
shows a folder's ``search_vs_random.json``.
"""

from __future__ import annotations

import statistics
from typing import Sequence

from hnanas.report.markdown import fa_e6, ms, pct
from hnanas.report.stats import versus_random

METRICS = ("iou", "niou", "pd", "fa")
ROLES = ("searched", "ablation", "random", "baseline")
FILE = "search_vs_random.json"


def summarise_networks(rows: Sequence[dict], networks: Sequence[dict]) -> list[dict]:
    """One entry per network of ``networks`` (dicts with ``name``, ``role`` and any other fields, e.g.
    ``predicted_ms``, ``measured_ms``, ``params``, ``macs``, kept as they are), with ``seeds``, ``<metric>_values``,
    ``<metric>_mean`` and ``<metric>_std`` (sample std; None with one seed) from the rows of that network."""
    out = []
    for net in networks:
        mine = sorted((r for r in rows if r["net"] == net["name"]), key=lambda r: r["seed"])
        entry = dict(net)
        entry["seeds"] = [r["seed"] for r in mine]
        for key in METRICS:
            values = [float(r[key]) for r in mine if r.get(key) is not None]
            entry[f"{key}_values"] = values
            entry[f"{key}_mean"] = statistics.fmean(values) if values else None
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(entry)
    return out


def search_vs_random(summary: Sequence[dict], *, seed: int = 0) -> dict:
    """The verdicts: for ``iou`` and ``niou``, the searched network (and the ablation, if any) against the random
    networks, each compared over its own seeds. Networks without results are left out (and counted)."""
    by_role = {role: [n for n in summary if n["role"] == role and n["iou_values"]] for role in ROLES}
    if not by_role["searched"] or len(by_role["random"]) < 2:
        return {"complete": False, "n_random": len(by_role["random"])}
    verdict: dict = {"complete": True, "n_random": len(by_role["random"]),
                     "random_missing": sum(1 for n in summary if n["role"] == "random" and not n["iou_values"])}
    for who in ("searched", "ablation"):
        if not by_role[who]:
            continue
        net = by_role[who][0]
        verdict[who] = {"name": net["name"]}
        for key in ("iou", "niou"):
            verdict[who][key] = versus_random(net[f"{key}_values"],
                                              {n["name"]: n[f"{key}_values"] for n in by_role["random"]}, seed=seed)
    return verdict


def versus_markdown(result: dict) -> str:
    """The table (one row per network, searched first) and the verdict lines, as Markdown."""
    order = {role: i for i, role in enumerate(ROLES)}
    nets = sorted(result["networks"], key=lambda n: (order.get(n["role"], 9), n.get("predicted_ms") or 0))
    lines = ["| network | role | seeds | IoU % | nIoU % | Pd % | Fa 1e-6 | predicted ms | measured ms | params M |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n in nets:
        cells = [_mean_std(n, "iou", pct), _mean_std(n, "niou", pct), _mean_std(n, "pd", pct),
                 _mean_std(n, "fa", fa_e6)]
        params = "—" if n.get("params") is None else f"{n['params'] / 1e6:.3f}"
        lines.append(f"| {n['name']} | {n['role']} | {len(n['seeds'])} | " + " | ".join(cells) +
                     f" | {ms(n.get('predicted_ms'))} | {ms(n.get('measured_ms'))} | {params} |")
    v = result["verdict"]
    lines.append("")
    if not v.get("complete"):
        lines.append("Incomplete: the verdict needs the searched network and at least two random networks trained.")
        return "\n".join(lines)
    for who in ("searched", "ablation"):
        if who not in v:
            continue
        for key, label in (("iou", "IoU"), ("niou", "nIoU")):
            r = v[who][key]
            ci = r["gap_ci95"]
            ci_text = "—" if ci is None else f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
            z = r["gap_in_pooled_std"]
            lines.append(f"- {who} `{v[who]['name']}`, test {label}: {100 * r['searched_mean']:.2f} % vs random "
                         f"{100 * r['random_mean']:.2f} % (sd between networks {pct(r['random_std'])}); gap "
                         f"{100 * r['gap']:+.2f} points = {'—' if z is None else f'{z:+.2f}'} pooled seed sd "
                         f"({pct(r['pooled_seed_std'])}); above {r['beats']} of {r['n_random']} random networks "
                         f"(percentile {r['percentile']:.0f}); bootstrap 95 % interval of the gap {ci_text} points")
    return "\n".join(lines)


def _mean_std(n: dict, key: str, fmt) -> str:
    mean, std = n.get(f"{key}_mean"), n.get(f"{key}_std")
    if mean is None:
        return "—"
    return fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std)}"
