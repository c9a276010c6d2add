"""Do zero-cost proxies rank networks on this space and task? Scored against the comparison ledgers (issue 15).

The shipped 6-epoch table of ``bench/rank_quality.py`` cannot judge a signal (its two seeds agree with tau +0.03);
the search-vs-random ledgers can: every network retrained with the comparison's full budget from 3 seeds. This
computes, for every network of the pooled ledgers (``bench/ledger_signals.py``'s pool: one dataset and budget, a
network counted once), what a search could know before training it — params, MACs (one crop), the table's
predicted latency, and at initialisation ``grad_norm``, ``snip`` and ``synflow`` (``hnanas.search.proxies``; the
mean of their logs over ``--init-seeds`` initialisations, each on its own training batch) — and scores each, by
Kendall's tau, against the other seeds' mean test IoU as ``ledger_signals`` scores a training run's signal (mean
over the held-out splits, so the two tables compare), and against the 3-seed mean.

Then the proxies as a second opinion beside one run's best validation IoU so far (the ``cpu`` preset's halving
signal): after each epoch, the networks ranked by rank(signal) + w * rank(proxy) (ranks as fractions of the pool),
for each proxy and ``--weights``. A rank among the pooled networks is not what a halving rung sees (its own
candidates), so this is a read-off, not a search; the last table scores what a rung does compare: the halving
score with ``halving.grad_norm_weight`` w, best_val_iou's signal + w x ln(initial gradient norm), for
``--grad-norm-weights`` (``bench/halving_replay.py --proxies`` replays the search with it). Minutes of CPU (one forward and backward per network and seed):

    B=bench/data/search_vs_random_NUAA-SIRST
    python bench/ledger_proxies.py ${B}_cpu14 ${B}_cpu42 ... --dataset ../shared/datasets/NUAA-SIRST \
        --split idx_427 --json bench/data/ledger_proxies_NUAA-SIRST.json
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from halving_replay import score as replay_score  # noqa: E402
from ledger_signals import pool, signal_at, splits  # noqa: E402

from hnanas.data import build_data  # noqa: E402
from hnanas.fileio import read_json, write_json  # noqa: E402
from hnanas.nas.genotype import load_genotype  # noqa: E402
from hnanas.nas.models import build_model, nested_spec  # noqa: E402
from hnanas.nas.space import load_space  # noqa: E402
from hnanas.ops.counting import count_macs, count_params  # noqa: E402
from hnanas.pipeline.budget import Budget, budget_config  # noqa: E402
from hnanas.report.stats import rank_agreement  # noqa: E402
from hnanas.search.config import preset_config  # noqa: E402
from hnanas.search.proxies import INIT_SEED, init_grad_norm, snip, synflow  # noqa: E402
from hnanas.train.loaders import EpochSampler  # noqa: E402
from hnanas.train.optim import build_train_loss  # noqa: E402

PROXIES = ("params", "macs", "predicted_ms", "grad_norm", "snip", "synflow")


def genotype_file(ledger: Path, name: str) -> Path:
    """The genotype a ledger's network was retrained from, as the ledger keeps it."""
    for path in (ledger / "genotypes" / f"{name}.json", ledger / "search" / "genotype.json" if name == "searched"
                 else None, ledger / "search" / "stage1_genotype.json" if name == "latency_only" else None):
        if path is not None and path.is_file():
            return path
    raise SystemExit(f"ledger_proxies: {ledger} keeps no genotype of {name} (genotypes/{name}.json)")


def network_proxies(space, genotype, batches: list, loss_fn, crop: int) -> dict[str, float]:
    """The zero-cost figures of one genotype: size figures once; the gradient ones as the mean of their logs over
    ``batches``, one initialisation each (torch seeds INIT_SEED + i: ``grad_norm`` is
    :func:`hnanas.search.proxies.init_grad_norm`, what ``halving.grad_norm_weight`` weighs)."""
    build = lambda: build_model(nested_spec(space, genotype))  # noqa: E731
    torch.manual_seed(0)
    model = build()
    out = {"params": float(count_params(model)), "macs": float(count_macs(model, (1, crop, crop))),
           "grad_norm": init_grad_norm(build, batches, loss_fn)}
    logs: dict[str, list[float]] = {"snip": [], "synflow": []}
    for seed, (images, masks) in enumerate(batches):
        torch.manual_seed(INIT_SEED + seed)
        model = build()
        logs["snip"].append(math.log(snip(model, images, masks, loss_fn)))
        logs["synflow"].append(math.log(max(synflow(model, (1, 1, crop, crop)), 1e-300)))
    out.update({k: statistics.fmean(v) for k, v in logs.items()})
    return out


def value(figures: dict[str, float], proxy: str) -> float:
    """A proxy's figure; ``-name`` the figure negated (lower ranks higher)."""
    return -figures[proxy[1:]] if proxy.startswith("-") else figures[proxy]


def fractional_ranks(values: dict[str, float]) -> dict[str, float]:
    order = sorted(values, key=values.get)
    return {n: i / max(len(order) - 1, 1) for i, n in enumerate(order)}


def mean_tau(taus) -> float | None:
    """The mean of the defined taus (a constant signal has none); None if there is none."""
    taus = [t for t in taus if t is not None]
    return statistics.fmean(taus) if taus else None


CPU_HALVING = dataclasses.replace(preset_config("cpu").halving, metric="best_val_iou")  # resolved once, not per score


def halving_score(rows: list[dict], epoch: int, log_grad_norm: float, weight: float) -> float:
    """The ``cpu`` preset's halving score after ``epoch`` with ``halving.grad_norm_weight`` ``weight`` (lower is
    better): best_val_iou's signal + weight x ln(initial gradient norm), as ``bench/halving_replay.py`` scores it."""
    h = dataclasses.replace(CPU_HALVING, grad_norm_weight=weight)
    return replay_score([{**r, "init_log_grad_norm": log_grad_norm} for r in rows], h, epoch)


def score(curves: dict, proxies: dict, roles: dict[str, str], weights: list[float],
          grad_norm_weights: list[float]) -> dict:
    seeds = sorted(set.intersection(*(set(s) for s in curves.values())))
    cuts = splits(seeds, 1, None)
    truth = {k: {n: statistics.fmean(c[t][0] for t in tr) for n, c in curves.items()} for k, (_, tr) in cuts.items()}
    full = {n: statistics.fmean(c[s][0] for s in seeds) for n, c in curves.items()}
    alone = {}
    for p in PROXIES:
        sig = {n: proxies[n][p] for n in curves}
        taus = [rank_agreement(sig, truth[k])["kendall_tau"] for k in cuts]
        rand = [n for n in curves if roles[n] == "random"]  # drawn by the prior: no search chose them
        alone[p] = {"tau_heldout": mean_tau(taus), "tau_all_seeds": rank_agreement(sig, full)["kendall_tau"],
                    "tau_random_only": rank_agreement({n: sig[n] for n in rand}, full)["kendall_tau"],
                    "n_random": len(rand)}
    epochs = min(int(c[s][1][-1]["epoch"]) for c in curves.values() for s in seeds)
    mixed = []
    q_of = {p: fractional_ranks({n: value(proxies[n], p) for n in curves}) if p else dict.fromkeys(curves, 0.0)
            for p in (None, *PROXIES, *(f"-{q}" for q in PROXIES))}
    for epoch in range(1, epochs + 1):
        r_of = {k: fractional_ranks({n: signal_at(c[sig[0]][1], "best_val_iou", epoch) for n, c in curves.items()})
                for k, (sig, _) in cuts.items()}
        for p, q in q_of.items():
            for w in ([0.0] if p is None else weights):
                taus = [rank_agreement({n: r_of[k][n] + w * q[n] for n in curves}, truth[k])["kendall_tau"]
                        for k in cuts]
                mixed.append({"epoch": epoch, "proxy": p, "weight": w, "tau": mean_tau(taus)})
    halving = []
    for epoch in range(1, epochs + 1):
        for w in (0.0, *grad_norm_weights):
            taus = [rank_agreement({n: -halving_score(c[sig[0]][1], epoch, proxies[n]["grad_norm"], w)
                                    for n, c in curves.items()}, truth[k])["kendall_tau"] for k, (sig, _) in cuts.items()]
            halving.append({"epoch": epoch, "grad_norm_weight": w, "tau": mean_tau(taus)})
    ceiling = mean_tau(rank_agreement({n: c[sig[0]][0] for n, c in curves.items()}, truth[k])["kendall_tau"]
                               for k, (sig, _) in cuts.items())
    return {"seeds": seeds, "alone": alone, "with_best_val_iou": mixed, "halving_score": halving,
            "ceiling_tau": ceiling}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ledger", type=Path, nargs="+", help="search-vs-random ledgers of one dataset and budget")
    p.add_argument("--dataset", required=True, help="the dataset the ledgers' networks were retrained on")
    p.add_argument("--split", required=True)
    p.add_argument("--space", default="rep_nested")
    p.add_argument("--init-seeds", type=int, default=3, help="initialisations (and training batches) per network")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--weights", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                   help="weights of a proxy's rank beside the validation signal's")
    p.add_argument("--grad-norm-weights", type=float, nargs="+", default=[0.05, 0.1, 0.2],
                   help="halving.grad_norm_weight values whose halving score is scored too")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    curves, sources = pool(args.ledger)
    space = load_space(args.space)
    cfg = budget_config(Budget(crop=args.crop, batch_size=args.batch_size, measure_latency=False),
                        {"genotype": str(genotype_file(Path(sources[0]["ledger"]), sources[0]["network"]
                                                       .rsplit("/", 1)[-1])), "space": args.space},
                        {"dataset": args.dataset, "split": args.split}, 0)
    data = build_data(cfg.data)
    loss_fn = build_train_loss(cfg.train.loss)
    data.train.set_epoch(0)
    loader = torch.utils.data.DataLoader(data.train, batch_size=args.batch_size,
                                         sampler=EpochSampler(len(data.train), 0))
    batches = [b[:2] for b, _ in zip(loader, range(args.init_seeds))]
    proxies, roles = {}, {}
    for i, src in enumerate(sources):
        ledger, name = Path(src["ledger"]), src["network"].rsplit("/", 1)[-1]
        nets = {n["name"]: n for n in read_json(ledger / "networks.json")["networks"]}
        proxies[src["network"]] = {**network_proxies(space, load_genotype(genotype_file(ledger, name), space),
                                                     batches, loss_fn, args.crop),
                                   "predicted_ms": float(nets[name]["predicted_ms"])}
        roles[src["network"]] = nets[name]["role"]
        print(f"{i + 1}/{len(sources)} {src['network']}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in proxies[src["network"]].items()), flush=True)
    result = score(curves, proxies, roles, args.weights, args.grad_norm_weights)
    fmt = lambda v: "n/a" if v is None else f"{v:+.2f}"  # noqa: E731
    print(f"{len(curves)} networks; ceiling (one seed's test IoU vs the others' mean) {fmt(result['ceiling_tau'])}")
    n_random = next(iter(result["alone"].values()))["n_random"]
    print(f"| proxy | tau vs held-out seeds | tau vs 3-seed mean | the {n_random} random networks only |\n|---|---|---|---|")
    for k, v in result["alone"].items():
        print(f"| {k} | {fmt(v['tau_heldout'])} | {fmt(v['tau_all_seeds'])} | {fmt(v['tau_random_only'])} |")
    epochs = sorted({r["epoch"] for r in result["with_best_val_iou"]})
    cols = [(r["proxy"], r["weight"]) for r in result["with_best_val_iou"] if r["epoch"] == 1]
    print("| best_val_iou + w * proxy | " + " | ".join(f"ep {e}" for e in epochs) + " |")
    print("|---|" + "---|" * len(epochs))
    for proxy, w in cols:
        taus = [r["tau"] for r in result["with_best_val_iou"] if (r["proxy"], r["weight"]) == (proxy, w)]
        print(f"| {proxy or 'alone'}{'' if proxy is None else f' x{w}'} | " + " | ".join(fmt(t) for t in taus)
              + " |")
    print("| halving score (best_val_iou), grad_norm_weight | " + " | ".join(f"ep {e}" for e in epochs) + " |")
    print("|---|" + "---|" * len(epochs))
    for w in (0.0, *args.grad_norm_weights):
        taus = [r["tau"] for r in result["halving_score"] if r["grad_norm_weight"] == w]
        print(f"| {w:g} | " + " | ".join(fmt(t) for t in taus) + " |")
    if args.json:
        write_json(args.json, {"networks": proxies, "roles": roles, "sources": sources, **result,
                               "command": " ".join(["python", "bench/ledger_proxies.py",
                                                    *(argv if argv is not None else sys.argv[1:])])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
