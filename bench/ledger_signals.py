"""How well does a short training run's signal rank networks? Read off a comparison ledger's retrain logs (issue 15).

A search-vs-random ledger (``bench/search_vs_random.py --ledger``) keeps, for every network and seed, the
retrain's per-epoch log (training loss, validation loss and IoU after every epoch) and its test IoU. That is a
ground truth with its learning curves: the signal a search could read after k epochs of one seed's training
(``val_iou``, ``best_val_iou``: the best so far, ``val_loss``, ``train_loss``; losses negated so that higher is
better) is scored, by Kendall's tau and Spearman's rho, against the mean test IoU of the *other* seeds of the same
networks, so that signal and truth share no seed; one row per signal and epoch, tau per held-out seed and their
mean. The ceiling beside it: tau between one seed's test IoU and the other seeds' mean. No training: seconds.

    python bench/ledger_signals.py bench/data/search_vs_random_NUDT-SIRST \
        --json bench/data/ledger_signals_NUDT-SIRST.json

Baselines (role ``baseline``) are left out: they are there for scale, at another latency and one seed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from hnanas.fileio import read_json, write_json
from hnanas.report.stats import rank_agreement
from hnanas.runs import read_csv_rows

SIGNALS = {"val_iou": 1.0, "best_val_iou": 1.0, "val_loss": -1.0, "train_loss": -1.0}  # name: sign (higher=better)
COLUMNS = {"train_loss": "loss"}  # retrain_log.csv column of a signal, where it differs from the name


def load_curves(ledger: Path) -> dict[str, dict[int, tuple[float, list[dict]]]]:
    """{network: {seed: (test IoU, per-epoch log rows)}} for the ledger's non-baseline networks."""
    plan = read_json(ledger / "networks.json")
    curves: dict[str, dict[int, tuple[float, list[dict]]]] = {}
    for net in plan["networks"]:
        if net["role"] == "baseline":
            continue
        for run in sorted((ledger / "nets" / net["name"]).glob("seed*")):
            if (run / "metrics.json").is_file() and (run / "retrain_log.csv").is_file():
                curves.setdefault(net["name"], {})[int(run.name[4:])] = (
                    float(read_json(run / "metrics.json")["iou"]), read_csv_rows(run / "retrain_log.csv"))
    return curves


def signal_at(rows: list[dict], name: str, epoch: int) -> float | None:
    """The signal after ``epoch`` (the log's epoch column); None where that epoch was not validated."""
    upto = [r for r in rows if int(r["epoch"]) <= epoch and r.get("val_iou") not in (None, "")]
    if not upto or int(upto[-1]["epoch"]) != epoch:
        return None
    if name == "best_val_iou":
        return max(float(r["val_iou"]) for r in upto)
    return SIGNALS[name] * float(upto[-1][COLUMNS.get(name, name)])


def score(curves: dict) -> dict:
    seeds = sorted(set.intersection(*(set(s) for s in curves.values())))  # seeds every network has
    if len(seeds) < 2:
        raise SystemExit(f"ledger_signals: the networks share {len(seeds)} finished seed(s); a signal of one seed "
                         f"is scored against the others', so 2 are needed (finish more retrains of the ledger)")
    truth = {s: {n: statistics.fmean(c[t][0] for t in seeds if t != s) for n, c in curves.items()} for s in seeds}
    epochs = min(int(c[s][1][-1]["epoch"]) for c in curves.values() for s in seeds)
    rows = []
    for name in SIGNALS:
        for epoch in range(1, epochs + 1):
            per_seed = {s: rank_agreement({n: signal_at(c[s][1], name, epoch) for n, c in curves.items()}, truth[s])
                        for s in seeds}
            taus = [a["kendall_tau"] for a in per_seed.values() if a["kendall_tau"] is not None]
            rhos = [a["spearman_rho"] for a in per_seed.values() if a["spearman_rho"] is not None]
            rows.append({"signal": name, "epoch": epoch, "tau_per_seed": {s: a["kendall_tau"] for s, a in
                                                                           per_seed.items()},
                         "tau": statistics.fmean(taus) if taus else None,
                         "rho": statistics.fmean(rhos) if rhos else None})
    ceiling = {s: rank_agreement({n: c[s][0] for n, c in curves.items()}, truth[s])["kendall_tau"] for s in seeds}
    return {"networks": sorted(curves), "seeds": seeds, "epochs": epochs, "rows": rows, "ceiling_tau": ceiling}


def table(result: dict) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:+.2f}"  # noqa: E731
    seeds = result["seeds"]
    lines = [f"{len(result['networks'])} networks, seeds {seeds}; truth: the other seeds' mean test IoU",
             "| signal | epoch | " + " | ".join(f"tau, seed {s}" for s in seeds) + " | mean tau | mean rho |",
             "|---|---|" + "---|" * (len(seeds) + 2)]
    for r in result["rows"]:
        lines.append(f"| {r['signal']} | {r['epoch']} | " + " | ".join(fmt(r["tau_per_seed"][s]) for s in seeds)
                     + f" | {fmt(r['tau'])} | {fmt(r['rho'])} |")
    lines.append("| ceiling: this seed's test IoU | - | " + " | ".join(fmt(result["ceiling_tau"][s]) for s in seeds)
                 + f" | {fmt(statistics.fmean(result['ceiling_tau'].values()))} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ledger", type=Path, help="a search-vs-random ledger folder (bench/data/search_vs_random_*)")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    args = p.parse_args(argv)
    if not (args.ledger / "networks.json").is_file():
        raise SystemExit(f"ledger_signals: {args.ledger} has no networks.json; pass a --ledger folder of "
                         f"bench/search_vs_random.py")
    curves = load_curves(args.ledger)
    if len(curves) < 3:
        raise SystemExit(f"ledger_signals: {args.ledger} has finished retrains of {len(curves)} networks; need 3")
    result = {"ledger": str(args.ledger), **score(curves)}
    print(table(result))
    if args.json is not None:
        write_json(args.json, {**result, "command": " ".join(["python", "bench/ledger_signals.py",
                                                               *(argv or sys.argv[1:])])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
