"""How well does a short training run's signal rank networks? Read off comparison ledgers' retrain logs (issue 15).

A search-vs-random ledger (``bench/search_vs_random.py --ledger``) keeps, for every network and seed, the
retrain's per-epoch log (training loss, validation loss and IoU after every epoch) and its test IoU. That is a
ground truth with its learning curves: the signal a search could read after k epochs of one seed's training
(``val_iou``, ``best_val_iou``: the best so far, ``val_iou_mean3``: the mean of the last three validations,
``val_loss``, ``train_loss``; losses negated so that higher is better; ``best_val_iou_niou``: the best so far
of (validation IoU + nIoU) / 2, the halving signal of that name) is scored, by Kendall's tau and Spearman's
rho, against the mean test IoU of the *other* seeds of the same networks, so that signal and truth share no seed;
one row per signal and epoch, tau per held-out seed and their mean. The ceiling beside it: tau between one seed's
test IoU and the other seeds' mean. No training: seconds.

    python bench/ledger_signals.py bench/data/search_vs_random_NUDT-SIRST \
        --json bench/data/ledger_signals_NUDT-SIRST.json

Several ledgers of one dataset and retrain budget are pooled into one ground truth (networks of several latency
points and searches); a network is the genotype file its retrains were trained from (``config.yaml``), so one that
a ledger reused from another (``--reuse``) counts once. Ledgers of other budgets are refused.
Baselines (role ``baseline``) are left out: they are there for scale, at another latency and one seed.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

from hnanas.fileio import read_json, read_yaml, write_json
from hnanas.report.stats import rank_agreement
from hnanas.runs import read_csv_rows
from hnanas.search.signals import iou_niou

SIGNALS = {"val_iou": 1.0, "best_val_iou": 1.0, "val_iou_mean3": 1.0, "val_loss": -1.0,
           "train_loss": -1.0, "best_val_iou_niou": 1.0}  # name: sign (higher = better)
COLUMNS = {"train_loss": "loss"}  # retrain_log.csv column of a signal, where it differs from the name


def load_networks(ledger: Path) -> dict[str, dict]:
    """{network: {"genotype", "budget", "seeds": {seed: (test IoU, log rows)}}} for the ledger's non-baseline
    networks: ``genotype`` the genotype file its retrains name, ``budget`` the retrains' dataset, split, epochs, crop
    and batch (both None without a config)."""
    if not (ledger / "networks.json").is_file():
        raise SystemExit(f"ledger_signals: {ledger} has no networks.json; pass a --ledger folder of "
                         f"bench/search_vs_random.py")
    nets: dict[str, dict] = {}
    for net in read_json(ledger / "networks.json")["networks"]:
        if net["role"] == "baseline":
            continue
        for run in sorted((ledger / "nets" / net["name"]).glob("seed*")):
            if (run / "metrics.json").is_file() and (run / "retrain_log.csv").is_file():
                entry = nets.setdefault(net["name"], {"genotype": None, "budget": None, "seeds": {}})
                entry["seeds"][int(run.name[4:])] = (float(read_json(run / "metrics.json")["iou"]),
                                                     read_csv_rows(run / "retrain_log.csv"))
                if (run / "config.yaml").is_file():
                    cfg = read_yaml(run / "config.yaml")
                    data, train = cfg["data"], cfg["train"]
                    entry["genotype"] = cfg["model"].get("genotype")
                    entry["budget"] = {"dataset": Path(data["dataset"]).name, "split": data["split"],
                                       "epochs": train["epochs"], "crop": data["crop_size"],
                                       "batch": train["batch_size"]}
    return nets


def pool(ledgers: list[Path]) -> tuple[dict, list[dict]]:
    """The networks of all ``ledgers`` as one ground truth: {name: seeds} (names ``LEDGER/net`` when there are
    several) and, per network, where it came from; a network already seen in an earlier ledger is left out."""
    curves: dict[str, dict] = {}
    sources: list[dict] = []
    seen: set[str] = set()
    budget, budget_of = None, None
    for ledger in ledgers:
        for name, net in load_networks(ledger).items():
            if net["budget"] is not None:
                if budget is not None and net["budget"] != budget:
                    raise SystemExit(f"ledger_signals: {ledger} retrained with {net['budget']}, {budget_of} with "
                                     f"{budget}; pool only ledgers of one dataset and budget")
                budget, budget_of = net["budget"], ledger
            label = name if len(ledgers) == 1 else f"{ledger.name.removeprefix('search_vs_random_')}/{name}"
            key = net["genotype"] or f"{ledger}/{name}"  # a network without a genotype file is its ledger's own
            if key in seen:
                continue
            seen.add(key)
            curves[label] = net["seeds"]
            sources.append({"network": label, "ledger": str(ledger), "genotype": net["genotype"]})
    return curves, sources


def signal_at(rows: list[dict], name: str, epoch: int) -> float | None:
    """The signal after ``epoch`` (the log's epoch column); None where that epoch was not validated."""
    upto = [r for r in rows if int(r["epoch"]) <= epoch and r.get("val_iou") not in (None, "")]
    if not upto or int(upto[-1]["epoch"]) != epoch:
        return None
    if name == "best_val_iou":
        return max(float(r["val_iou"]) for r in upto)
    if name == "best_val_iou_niou":  # the halving signal of that name: the best (IoU + nIoU) / 2 so far
        if any(r.get("val_niou") in (None, "") for r in upto):
            return None  # a log without nIoU (the table says n/a)
        return max(iou_niou(float(r["val_iou"]), float(r["val_niou"])) for r in upto)
    if name == "val_iou_mean3":
        return statistics.fmean(float(r["val_iou"]) for r in upto[-3:])
    return SIGNALS[name] * float(upto[-1][COLUMNS.get(name, name)])


def splits(seeds: list[int], runs: int, truth_runs: int | None) -> dict[str, tuple[tuple, tuple]]:
    """{label: (signal seeds, truth seeds)}: every choice of ``runs`` seeds whose mean is the signal, against every
    choice of ``truth_runs`` of the other seeds (default: all of them) whose mean test IoU is the truth. Labels:
    the signal seeds joined by "+", then ">" and the truth seeds where those are not all the rest."""
    out = {}
    for sig in itertools.combinations(seeds, runs):
        rest = [s for s in seeds if s not in sig]
        for truth in itertools.combinations(rest, truth_runs or len(rest)):
            label = "+".join(map(str, sig)) + ("" if len(truth) == len(rest) else ">" + "+".join(map(str, truth)))
            out[label] = (sig, truth)
    return out


def mean_signal(curves: dict, seeds: tuple, name: str, epoch: int) -> dict[str, float | None]:
    """{network: the signal after ``epoch`` averaged over runs ``seeds``} (None where a run lacks it)."""
    out = {}
    for n, c in curves.items():
        values = [signal_at(c[s][1], name, epoch) for s in seeds]
        out[n] = None if None in values else statistics.fmean(values)
    return out


def score(curves: dict, runs: int = 1, truth_runs: int | None = None) -> dict:
    seeds = sorted(set.intersection(*(set(s) for s in curves.values())))  # seeds every network has
    if len(seeds) < runs + (truth_runs or 1):
        raise SystemExit(f"ledger_signals: the networks share {len(seeds)} finished seed(s); a signal of {runs} "
                         f"run(s) is scored against {truth_runs or 1} other seed(s), so {runs + (truth_runs or 1)} "
                         f"are needed (finish more retrains of the ledger, or lower --runs)")
    cuts = splits(seeds, runs, truth_runs)
    truth = {k: {n: statistics.fmean(c[t][0] for t in tr) for n, c in curves.items()} for k, (_, tr) in cuts.items()}
    epochs = min(int(c[s][1][-1]["epoch"]) for c in curves.values() for s in seeds)
    rows = []
    for name in SIGNALS:
        for epoch in range(1, epochs + 1):
            per = {k: rank_agreement(mean_signal(curves, sig, name, epoch), truth[k]) for k, (sig, _) in cuts.items()}
            taus = [a["kendall_tau"] for a in per.values() if a["kendall_tau"] is not None]
            rhos = [a["spearman_rho"] for a in per.values() if a["spearman_rho"] is not None]
            rows.append({"signal": name, "epoch": epoch, "tau_per_seed": {k: a["kendall_tau"] for k, a in per.items()},
                         "tau": statistics.fmean(taus) if taus else None,
                         "rho": statistics.fmean(rhos) if rhos else None})
    ceiling = {k: rank_agreement({n: statistics.fmean(c[s][0] for s in sig) for n, c in curves.items()},
                                 truth[k])["kendall_tau"] for k, (sig, _) in cuts.items()}
    return {"networks": sorted(curves), "seeds": seeds, "runs": runs, "truth_runs": truth_runs or len(seeds) - runs,
            "epochs": epochs, "rows": rows, "ceiling_tau": ceiling}


def table(result: dict) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:+.2f}"  # noqa: E731
    cuts = list(result["ceiling_tau"])
    lines = [f"{len(result['networks'])} networks, seeds {result['seeds']}; signal: the mean of {result['runs']} "
             f"run(s); truth: the mean test IoU of {result['truth_runs']} other seed(s)",
             "| signal | epoch | " + " | ".join(f"tau, {k}" for k in cuts) + " | mean tau | mean rho |",
             "|---|---|" + "---|" * (len(cuts) + 2)]
    for r in result["rows"]:
        lines.append(f"| {r['signal']} | {r['epoch']} | " + " | ".join(fmt(r["tau_per_seed"][k]) for k in cuts)
                     + f" | {fmt(r['tau'])} | {fmt(r['rho'])} |")
    lines.append("| ceiling: these runs' test IoU | - | " + " | ".join(fmt(result["ceiling_tau"][k]) for k in cuts)
                 + f" | {fmt(statistics.fmean(v for v in result['ceiling_tau'].values() if v is not None))} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ledger", type=Path, nargs="+", help="search-vs-random ledger folders (bench/data/"
                   "search_vs_random_*); several of one dataset and budget are pooled")
    p.add_argument("--runs", type=int, default=1, help="runs (seeds) whose mean signal ranks the networks, as "
                   "--final-seeds would (default 1)")
    p.add_argument("--truth-runs", type=int, default=None, help="other seeds whose mean test IoU is the truth "
                   "(default: all the others; 1 to compare --runs values against the same truth)")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    args = p.parse_args(argv)
    if args.runs < 1 or (args.truth_runs is not None and args.truth_runs < 1):
        raise SystemExit("ledger_signals: --runs and --truth-runs count seeds: 1 or more")
    curves, sources = pool(args.ledger)
    if len(curves) < 3:
        raise SystemExit(f"ledger_signals: {' '.join(map(str, args.ledger))} hold finished retrains of "
                         f"{len(curves)} networks; need 3")
    result = {"ledger": [str(x) for x in args.ledger], **score(curves, args.runs, args.truth_runs),
              "sources": sources}
    print(table(result))
    if args.json is not None:
        write_json(args.json, {**result, "command": " ".join(["python", "bench/ledger_signals.py",
                                                               *(argv or sys.argv[1:])])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
