"""Which halving schedule picks the best network? Replay the halving strategy on comparison ledgers (issue 15).

A pooled ground truth of search-vs-random ledgers (``bench/ledger_signals.py``: networks of one dataset and retrain
budget, each retrained on 3 seeds with its per-epoch log) is a population of candidates whose learning curves
are known. One replay draws ``halving.trials`` of them at random, in random order, and runs them through the
strategy's successive halving exactly as ``hnanas search --strategy halving`` does: Optuna's
``SuccessiveHalvingPruner`` with the config's first rung and ``eta`` (rungs scaled to ``--train-images`` as the
search scales them), each candidate reporting the score the strategy computes from its signal after every epoch,
read off one seed's retrain log; the winner is the best complete candidate (with ``final_seeds`` 2 the best
``finalists`` are scored again on a second seed's run and ranked by the mean; where fewer finished, the candidates
stopped latest fill in, their search run trained on to the end, as the search does). The winner is judged by a third
seed's test IoU, against the mean of the candidates it was drawn with (what a random pick would score), and what
it cost is counted in candidate-epochs (training, not CPU seconds: the replay is machine-free); how often the
winner is the first candidate drawn is counted too (Optuna's asynchronous pruner stops nobody at a rung no one
else has reached, so the first candidate always trains to the end: 1 in ``trials`` would be no bias). Beside the
variants, two references on the same draws: training every candidate to the end and picking by the same signal
(no halving), and the oracle that picks by the judging seed itself (what no signal can beat).

    python bench/halving_replay.py bench/data/search_vs_random_NUAA-SIRST_cpu42 ... --train-images 273 \\
        --variant "eta 2: eta=2" --variant "final seeds 2: final_seeds=2" --json out.json

The ``±`` beside a gain is the replays' own standard error: it says nothing of how much the gains would move
with other networks in the pool. ``--pool-bootstrap B`` measures that: it resamples the pool's networks with
replacement B times, replays every variant on each resample (``--reps`` replays each) and reports each variant's
gain minus the base config's, with the 2.5-97.5 % interval over the resamples (a difference whose interval holds 0
is not established by these ledgers).

What it leaves out: TPE (candidates are drawn from the pool at random, as the start-up candidates are), the
latency term (inside a hinge budget's band it is 0), and how long each candidate's epochs take. The retrain
logs must be as long as the config's last rung (the learning rate follows a cosine over ``max_epochs`` in both).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path

import numpy as np
import optuna

from hnanas.config import assignments, override, to_dict
from hnanas.errors import ConfigError
from hnanas.fileio import read_json, write_json
from hnanas.search.config import HalvingConfig, preset_config
from hnanas.search.rungs import HalvingPruner, halve_batch, rung_epochs
from hnanas.search.signals import AP_SIGNALS, accuracy_signal, iou_niou

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ledger_signals import pool  # noqa: E402

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def score(rows: list[dict], h: HalvingConfig, epoch: int) -> float:
    """The strategy's score of a candidate after ``epoch`` (lower is better), read off its retrain log: the signal
    of ``h.metric``, plus ``h.grad_norm_weight`` x the network's ``init_log_grad_norm`` (:func:`attach_proxies`)."""
    upto = [r for r in rows if int(r["epoch"]) <= epoch]
    last = upto[-1]
    mix = (max(iou_niou(float(r["val_iou"]), float(r["val_niou"])) for r in upto) if h.metric == "best_val_iou_niou"
           else math.nan)  # logs without nIoU serve every other signal
    prior = h.grad_norm_weight * last["init_log_grad_norm"] if h.grad_norm_weight else 0.0
    return accuracy_signal(h.metric, float(last["val_loss"]), float(last["loss"]), float(last["val_iou"]),
                           max(float(r["val_iou"]) for r in upto), best_iou_niou=mix) + prior


def attach_proxies(curves: dict, path: Path) -> None:
    """Give every row of every network's logs its ``init_log_grad_norm`` from ``bench/ledger_proxies.py``'s JSON
    (computed there by the search's own :func:`hnanas.search.proxies.init_grad_norm`)."""
    figures = read_json(path)["networks"]
    missing = sorted(set(curves) - set(figures))
    if missing:
        raise SystemExit(f"halving_replay: {path} has no figures of {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''}; run bench/ledger_proxies.py on the same ledgers")
    for name, seeds in curves.items():
        for _, rows in seeds.values():
            for r in rows:
                r["init_log_grad_norm"] = figures[name]["grad_norm"]


def halve(logs: list[list[dict]], h: HalvingConfig, lo: int, hi: int) -> tuple[int, list[int], list[int]]:
    """Run candidates ``logs`` (one retrain log each, in drawing order) through Optuna's successive halving:
    (candidate-epochs trained, indices of the complete candidates, best first, indices of the stopped ones,
    stopped latest first: the furthest epoch, then the score there, as the search fills its finalists). With
    ``h.sync_startup`` the first ``h.startup_trials`` are halved as one batch first
    (:func:`hnanas.search.rungs.halve_batch`); without, the first always completes."""
    study = optuna.create_study(direction="minimize", pruner=HalvingPruner(min_resource=lo, reduction_factor=h.eta))
    cost, done, stopped = 0, {}, {}
    batch = list(range(min(h.startup_trials, len(logs)))) if h.sync_startup else []
    trials = {i: study.ask() for i in batch}
    at = dict.fromkeys(batch, 0)

    def advance(i: int, epoch: int) -> float:
        nonlocal cost
        for e in range(at[i] + 1, epoch + 1):
            value = score(logs[i], h, e)
            trials[i].report(value, e)
            trials[i].should_prune()  # registers the value at a rung; the batch's rule decides
        cost += epoch - at[i]
        at[i] = epoch
        return value

    reached = halve_batch(batch, advance, lambda epoch: [], lo, hi, h.eta)
    for i, epoch in reached.items():
        if epoch == hi:
            done[i] = score(logs[i], h, hi)
            study.tell(trials[i], done[i], state=COMPLETE)
        else:
            study.tell(trials[i], state=PRUNED)
            if epoch:
                stopped[i] = (-epoch, score(logs[i], h, epoch))
    for i, rows in enumerate(logs[len(batch):], start=len(batch)):
        trial = study.ask()
        for epoch in range(1, hi + 1):
            value = score(rows, h, epoch)
            trial.report(value, epoch)
            cost += 1
            if epoch < hi and trial.should_prune():
                study.tell(trial, state=PRUNED)
                stopped[i] = (-epoch, value)
                break
        else:
            study.tell(trial, value, state=COMPLETE)
            done[i] = value
    return cost, sorted(done, key=done.get), sorted(stopped, key=stopped.get)


def pick(curves: dict, names: list[str], seeds: list[int], h: HalvingConfig, lo: int, hi: int) -> tuple[str, int]:
    """The network the strategy picks from ``names`` (drawing order) with the search's run on ``seeds[0]`` and a
    finalist's second run on ``seeds[1]``, and the candidate-epochs it cost."""
    cost, ranked, stopped = halve([curves[n][seeds[0]][1] for n in names], h, lo, hi)
    if h.final_seeds == 1:
        return names[ranked[0]], cost
    finalists = [*ranked, *stopped][:h.finalists]  # the stopped fill in where too few finished, as in the search
    if len(finalists) < 2:
        return names[finalists[0]], cost
    runs = seeds[:h.final_seeds]
    mean = {i: statistics.fmean(score(curves[names[i]][s][1], h, hi) for s in runs) for i in finalists}
    filled = sum(i not in ranked for i in finalists)  # their search run trained again, to the end
    return names[min(finalists, key=mean.get)], cost + hi * (len(finalists) * (h.final_seeds - 1) + filled)


def replay(curves: dict, variants: dict[str, HalvingConfig], n_train: int, reps: int, seed: int,
           whole: dict | None = None) -> dict:
    """Replay every variant ``reps`` times on the same draws (candidates, order, seeds); per variant the mean gain
    (winner's judging-seed test IoU minus its candidates' mean), its standard error, the winner's percentile among
    its candidates, the mean candidate-epochs, and how often the winner is the first candidate drawn (Optuna's
    asynchronous halving lets the first through every rung unopposed); the references on the same draws."""
    whole = curves if whole is None else whole  # the pool a resample was drawn from: its seeds and budget
    shared = sorted(set.intersection(*(set(c) for c in whole.values())))
    runs = max(h.final_seeds for h in variants.values())
    if len(shared) < runs + 1:
        raise SystemExit(f"halving_replay: the networks share {len(shared)} finished seed(s); a replay needs "
                         f"{runs} for the search's runs and 1 to judge")
    rungs = {k: rung_epochs(h, n_train) for k, h in variants.items()}
    epochs = min(int(c[s][1][-1]["epoch"]) for c in whole.values() for s in shared)
    for k, (lo, hi) in rungs.items():
        if hi != epochs:
            raise SystemExit(f"halving_replay: variant {k!r} trains candidates {hi} epochs on {n_train} images, the "
                             f"ledgers' retrains {epochs}; replay only a config whose last rung is the retrains' "
                             f"budget (its learning rate follows a cosine over its last rung)")
    n = {k: h.trials for k, h in variants.items()}
    if max(n.values()) > len(curves):
        raise SystemExit(f"halving_replay: {max(n.values())} candidates per search, the ledgers hold "
                         f"{len(curves)} networks; lower halving.trials or pool more ledgers")
    rng = random.Random(seed)
    out = {k: {"gain": [], "percentile": [], "cost": [], "first": []} for k in [*variants, "no halving", "oracle"]}
    for _ in range(reps):
        order = rng.sample(sorted(curves), len(curves))
        perm = rng.sample(shared, len(shared))
        judge = perm[-1]
        truth = {name: curves[name][judge][0] for name in order}
        for k, h in variants.items():
            names = order[:n[k]]
            winner, cost = pick(curves, names, perm, h, *rungs[k])
            record(out[k], truth, names, winner, cost)
        names = order[:max(n.values())]  # the references: the most candidates any variant draws
        base = next(iter(variants.values()))  # the base config's signal
        by_signal = min(names, key=lambda x: score(curves[x][perm[0]][1], base, epochs))
        record(out["no halving"], truth, names, by_signal, epochs * len(names))
        record(out["oracle"], truth, names, max(names, key=truth.get), epochs * len(names))
    return {k: summary(v) for k, v in out.items()} | {"_rungs": {k: list(r) for k, r in rungs.items()},
                                                        "_seeds": shared, "_epochs": epochs,
                                                        "_reference_candidates": max(n.values())}


def pool_bootstrap(curves: dict, variants: dict[str, HalvingConfig], n_train: int, reps: int, seed: int,
                   resamples: int) -> dict:
    """Each variant's gain minus the first variant's (the base config) on ``resamples`` resamples of the pool's
    networks (with replacement; a network drawn twice is two candidates, where a search would train it once: a
    16-candidate replay on a resample of 27 holds about 12 different networks), ``reps`` replays each: {variant:
    {mean, ci95 (2.5 and 97.5 % quantiles), per-resample differences}}. The seeds and the budget are the whole
    pool's."""
    rng = random.Random(seed)
    names = sorted(curves)
    base = next(iter(variants))
    diffs: dict[str, list[float]] = {k: [] for k in variants}
    for b in range(resamples):
        resample = {f"{n}#{i}": curves[n] for i, n in enumerate(rng.choice(names) for _ in names)}
        result = replay(resample, variants, n_train, reps, seed + 1 + b, whole=curves)
        for k in variants:
            diffs[k].append(result[k]["gain"] - result[base]["gain"])
    return {k: {"mean": statistics.fmean(d), "ci95": [float(q) for q in np.quantile(d, [0.025, 0.975])],
                "differences": d} for k, d in diffs.items()}


def record(acc: dict, truth: dict, names: list[str], winner: str, cost: int) -> None:
    values = [truth[x] for x in names]
    acc["first"].append(winner == names[0])
    acc["gain"].append(truth[winner] - statistics.fmean(values))
    acc["percentile"].append(sum(v <= truth[winner] for v in values) / len(values))
    acc["cost"].append(cost)


def summary(acc: dict) -> dict:
    g = acc["gain"]
    return {"gain": statistics.fmean(g), "gain_se": statistics.stdev(g) / len(g) ** 0.5 if len(g) > 1 else None,
            "percentile": statistics.fmean(acc["percentile"]), "candidate_epochs": statistics.fmean(acc["cost"]),
            "winner_is_first": statistics.fmean(acc["first"])}


def pooled_seed_sd(curves: dict) -> float:
    """sqrt of the mean over networks of the variance of test IoU over seeds: the comparison's unit of gap."""
    return statistics.fmean(statistics.variance([v[0] for v in c.values()]) for c in curves.values()) ** 0.5


def parse_variant(text: str, base: HalvingConfig) -> tuple[str, HalvingConfig]:
    """``"LABEL: key=value, key=value"`` (keys of the halving config) -> (label, the base config changed so)."""
    label, _, sets = text.partition(":")
    source = f"--variant {label.strip()!r}"
    try:
        changes = assignments([s.strip() for s in sets.split(",") if s.strip()], source=source)
        h = override(base, changes, source=source)
        if h.metric in AP_SIGNALS:  # the ledgers' retrain logs hold no validation AP
            raise ConfigError(f"{source}: metric={h.metric} needs the validation AP, which the ledgers do not hold")
        return label.strip(), h
    except (ConfigError, ValueError) as e:
        raise SystemExit(f"halving_replay: {e}") from None


def table(result: dict, sd: float, boot: dict | None = None) -> str:
    extra = " vs base, pool bootstrap 95 % |" if boot else ""
    lines = ["| schedule | rungs (epochs) | gain, IoU points | gain / pooled seed sd | percentile | candidate-epochs | "
             "winner drawn first |" + extra, "|---|---|---|---|---|---|---|" + ("---|" if boot else "")]
    for k, r in result.items():
        if k.startswith("_"):
            continue
        rungs = result["_rungs"].get(k)
        if rungs is None:
            k = f"{k} ({result['_reference_candidates']} candidates)"
        se = f" ± {100 * r['gain_se']:.2f}" if r["gain_se"] is not None else ""
        in_sd = "n/a" if sd == 0 else f"{r['gain'] / sd:+.2f}"
        vs = ""
        if boot:
            b = boot.get(k)
            vs = (f" {100 * b['mean']:+.2f} [{100 * b['ci95'][0]:+.2f}, {100 * b['ci95'][1]:+.2f}] |" if b
                  else " |")
        lines.append(f"| {k} | {'%d:%d' % tuple(rungs) if rungs else '-'} | {100 * r['gain']:+.2f}{se} | {in_sd} | "
                     f"{r['percentile']:.2f} | {r['candidate_epochs']:.1f} | {r['winner_is_first']:.2f} |" + vs)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ledger", type=Path, nargs="+", help="search-vs-random ledgers of one dataset and budget")
    p.add_argument("--train-images", type=int, required=True, help="images a candidate trains on (hnanas search "
                   "logs it: 273 on NUAA-SIRST idx_427, 530 on NUDT-SIRST 50_50); the rungs are scaled to it")
    p.add_argument("--preset", default="cpu", help="search preset whose halving config is replayed (default cpu)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="change the preset's halving config itself, e.g. trials=12 (repeatable; the variants "
                        "start from the changed config)")
    p.add_argument("--variant", action="append", default=[], metavar="'LABEL: key=value, ...'",
                   help="also replay the preset's halving config with these changes (repeatable)")
    p.add_argument("--reps", type=int, default=2000, help="replays per variant (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    p.add_argument("--pool-bootstrap", type=int, default=0, metavar="B",
                   help="also resample the pool's networks B times and report each variant's gain minus the base "
                        "config's with its 95 %% interval (--reps replays per resample; default 0: off)")
    p.add_argument("--proxies", type=Path, default=None, metavar="JSON",
                   help="bench/ledger_proxies.py's figures of the same networks: needed by grad_norm_weight > 0")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    args = p.parse_args(argv)
    if args.train_images < 1 or args.reps < 1 or args.pool_bootstrap < 0:
        raise SystemExit("halving_replay: --train-images and --reps must be 1 or more, --pool-bootstrap 0 or more")
    label, base = parse_variant(f"preset {args.preset}{' + ' if args.sets else ''}{', '.join(args.sets)}: "
                                f"{', '.join(args.sets)}", preset_config(args.preset).halving)
    variants = dict([(label, base), *(parse_variant(v, base) for v in args.variant)])
    curves, sources = pool(args.ledger)
    if args.proxies is not None:
        attach_proxies(curves, args.proxies)
    elif any(h.grad_norm_weight for h in variants.values()):
        raise SystemExit("halving_replay: grad_norm_weight needs each network's initial gradient norm; pass "
                         "--proxies JSON (bench/ledger_proxies.py on the same ledgers)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = replay(curves, variants, args.train_images, args.reps, args.seed)
    boot = (pool_bootstrap(curves, variants, args.train_images, args.reps, args.seed, args.pool_bootstrap)
            if args.pool_bootstrap else None)
    sd = pooled_seed_sd(curves)
    print(f"{len(curves)} networks, seeds {result['_seeds']}, {args.reps} replays"
          f"{f' (and on {args.pool_bootstrap} resamples of the pool)' if boot else ''}; pooled seed sd of test IoU "
          f"{100 * sd:.1f} points")
    print(table(result, sd, boot))
    if args.json is not None:
        write_json(args.json, {"ledger": [str(x) for x in args.ledger], "networks": len(curves),
                               "proxies": None if args.proxies is None else str(args.proxies),
                               "pooled_seed_sd": sd, "reps": args.reps, "seed": args.seed,
                               "train_images": args.train_images, "result": result, "sources": sources,
                               "pool_bootstrap": {"resamples": args.pool_bootstrap, "versus_base": boot},
                               "variants": {k: to_dict(h) for k, h in variants.items()},
                               "command": " ".join(["python", "bench/halving_replay.py", *(argv or sys.argv[1:])])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
