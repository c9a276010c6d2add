"""How well does each accuracy signal rank networks of this space on this task? (issue 14, part 2)

Ground truth: architectures of ``rep_nested`` retrained stand-alone with one fixed short budget (hnanas.pipeline.budget,
the same as bench/search_vs_random.py's) for two seeds: ``--spread`` random genotypes spread over the whole
latency range (log-spaced targets between the cheapest and the dearest network the table prices, up to
``--max-ms``; one latency-matched genotype per target), the named ones (dense_res3, dnanet_res3, chain_res3) and
the networks of search-vs-random comparisons (``--include DIR``: their searched, ablation and random networks,
whose retrains are reused). One CSV row per architecture and seed (genotype, params, MACs, predicted and measured
latency, validation and test metrics, the training loss of every epoch, the budget and command):
OUT/ground_truth.csv, and ``--record-csv`` copies it to bench/data/ so later work evaluates a signal in seconds.

Signals, each scored by Kendall's tau and Spearman's rho against the mean test IoU over the two seeds:
params, MACs, predicted latency; the training loss after epoch k and its sum over the first k epochs (TSE), read
from the *other* seed's retrain log so signal and truth do not share a seed; three zero-cost proxies at
initialisation (grad_norm, snip, synflow; hnanas.search.proxies); and a one-shot supernet (every edge and op in
shared weights, one random sub-network per step, ``--supernet-epochs``) scoring each architecture with inherited
weights by validation IoU and loss, with batch-norm statistics re-estimated and without. The ceiling beside them:
tau between the two seeds' test IoU. Table printed, OUT/rank_quality.json (``--record`` copies it).

    python bench/rank_quality.py --include runs/bench/svr_nuaa --out runs/bench/rank_nuaa \\
        --record bench/data/rank_quality_NUAA-SIRST.json --record-csv bench/data/rank_quality_NUAA-SIRST.csv
    # what was recorded on 2026-12-03 (about 2 h on 2 cores; its 6-epoch truth proved too noisy, see
    # docs/results.md): --spread 21 --min-ms 6 --epochs 6 --supernet-epochs 6, without --include

Every phase resumes: finished retrains are skipped, the supernet continues from its last epoch, computed signals
are cached in OUT/signals.json. Latencies are timed first, on a quiet machine (hnanas.pipeline.export.time_networks).
``--ledger DIR`` keeps the plan, latencies, signals and every finished retrain's metrics and log in a committed
folder (hnanas.pipeline.ledger), so a ground truth of more hours than one machine session accumulates over sessions;
``--no-train`` scores what has finished.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hnanas.data import build_data
from hnanas.envinfo import environment
from hnanas.fileio import read_json, write_json, write_text
from hnanas.latency.matched import PRIOR, latency_range, sample_at_latency
from hnanas.latency.table import LatencyTable, default_table_path
from hnanas.nas.genotype import load_genotype, named_genotypes
from hnanas.nas.models import build_model, nested_spec
from hnanas.nas.space import load_space
from hnanas.pipeline.budget import Budget, budget_config, retrain_all
from hnanas.pipeline.export import time_networks
from hnanas.pipeline.ledger import Ledger
from hnanas.pipeline.presets import RetrainConfig
from hnanas.pipeline.sources import resolve_spec
from hnanas.report.stats import rank_agreement
from hnanas.runs import RunDir, read_csv_rows
from hnanas.search.proxies import grad_norm, one_shot_forward, recalibrate_bn, snip, synflow
from hnanas.search.supernet import OneShotSupernet
from hnanas.train.loaders import EpochSampler, eval_loader
from hnanas.train.loop import evaluate, train_epoch
from hnanas.train.optim import build_optimizer, build_scheduler, build_train_loss

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SEEDS = (0, 1)
# what --ledger keeps of OUT (besides every finished retrain's metrics, log and config)
LEDGER_FILES = ("archs.json", "latency.json", "genotypes/*.json", "signals.json", "rank_quality.json",
                "ground_truth.csv")


def plan(args: argparse.Namespace, space, table) -> list[dict]:
    """The architectures (fixed once: OUT/archs.json), each with the retrain folder of each seed."""
    plan_file = args.out / "archs.json"
    settings = {"spread": args.spread, "min_ms": args.min_ms, "max_ms": args.max_ms, "sample_seed": args.sample_seed,
                "include": [str(p) for p in args.include]}
    if plan_file.exists():
        saved = read_json(plan_file)
        if saved["settings"] != settings:
            raise SystemExit(f"rank_quality: {plan_file} was planned with {saved['settings']}, not {settings}")
        return saved["archs"]
    archs = []
    folder = args.out / "genotypes"
    for name, g in named_genotypes(space).items():
        g.save(folder / f"{name}.json")
        archs.append({"name": name, "role": "named", "genotype": str(folder / f"{name}.json")})
    lo, hi = latency_range(space, table, n=3000, seed=args.sample_seed)
    targets = np.geomspace(max(2 * lo, args.min_ms), min(0.9 * hi, args.max_ms), args.spread)
    for i, target in enumerate(targets):
        m = sample_at_latency(space, table, float(target), 1, tol=0.1, seed=args.sample_seed + i,
                              name=f"spread_{i:02d}")[0]
        m.genotype.save(folder / f"{m.genotype.name}.json", {"predicted_latency_ms": m.predicted_ms, "prior": PRIOR})
        archs.append({"name": m.genotype.name, "role": "spread", "genotype": str(folder / f"{m.genotype.name}.json")})
    for svr in args.include:
        check_budget(svr, args)
        for net in read_json(svr / "networks.json")["networks"]:
            if "genotype" in net:
                archs.append({"name": f"{svr.name}/{net['name']}", "role": f"included {net['role']}",
                              "genotype": net["genotype"], "folder": str(svr / "nets" / net["name"])})
    for a in archs:
        g = load_genotype(a["genotype"], space)
        a["predicted_ms"] = table.predict(g, space).total_ms
        a["nodes"] = len(g.nodes)
        a.setdefault("folder", str(args.out / "nets" / a["name"]))
    write_json(plan_file, {"settings": settings, "archs": archs, "table": str(table.path)})
    return archs


def check_budget(svr: Path, args: argparse.Namespace) -> None:
    """An included comparison's retrains are reused only if they were trained with this budget and data."""
    found = next(iter(sorted(svr.glob("nets/*/seed*/config.yaml"))), None)
    if found is None:
        return
    cfg = RunDir(found.parent).read_config(RetrainConfig)
    have = (cfg.train.epochs, cfg.data.crop_size, cfg.train.batch_size, Path(cfg.data.dataset).name)
    want = (args.epochs, args.crop, args.batch_size, Path(args.dataset).name)
    if have != want:
        raise SystemExit(f"rank_quality: {svr} was retrained with (epochs, crop, batch, dataset) {have}, not {want}")


GT_COLUMNS = ("arch", "role", "seed", "nodes", "params", "macs", "predicted_ms", "measured_ms", "val_iou",
              "best_epoch", "test_iou", "test_niou", "test_pd", "test_fa", "train_path", "train_seconds",
              "epoch_losses", "genotype", "budget", "command")  # one row per architecture and seed, in this order


def budget_record(args) -> dict:
    """How the ground truth was trained (every row's ``budget`` column; the JSON's ``budget``, with the seeds)."""
    return {"epochs": args.epochs, "crop": args.crop, "batch_size": args.batch_size, "preset": "quick",
            "precision": args.precision, "dataset": Path(args.dataset).name, "split": args.split}


def ground_truth(args, archs: list[dict], latency: dict, command: str) -> list[dict]:
    """The ground-truth rows (GT_COLUMNS) of every finished retrain; ``command`` is the bench's command line."""
    budget = json.dumps(budget_record(args), separators=(",", ":"))
    rows = []
    for a in archs:
        for seed in SEEDS:
            folder = Path(a["folder"]) / f"seed{seed}"
            if not (folder / "metrics.json").exists():
                continue
            m = read_json(folder / "metrics.json")
            losses = [float(r["loss"]) for r in read_csv_rows(folder / "retrain_log.csv")]
            genotype = read_json(a["genotype"])
            rows.append({"arch": a["name"], "role": a["role"], "seed": seed, "nodes": a["nodes"],
                         "params": m["params"], "macs": m["macs"], "predicted_ms": round(a["predicted_ms"], 4),
                         "measured_ms": latency.get(a["name"]), "val_iou": m["val_iou"], "best_epoch": m["best_epoch"],
                         "test_iou": m["iou"], "test_niou": m["niou"], "test_pd": m["pd"], "test_fa": m["fa"],
                         "train_path": m["training"].get("train_path"), "train_seconds": m["training"]["seconds"],
                         "epoch_losses": json.dumps([round(v, 5) for v in losses]),
                         "genotype": json.dumps({"nodes": genotype["nodes"]}, separators=(",", ":")),
                         "budget": budget, "command": command})
    return rows


def measure(args, space, archs: list[dict]) -> dict:
    """Each architecture's deploy-form latency (cpu, 1 thread; hnanas.pipeline.export.time_networks), timed from its
    spec before any retrain starts, on one CPU model; ``{name: ms}``."""
    specs = {a["name"]: resolve_spec(a["genotype"], args.space) for a in archs}
    timed = time_networks(specs, args.out / "latency.json",
                          report=lambda name, t: print(f"latency: {name} {t['measured_ms']:.2f} ms", flush=True))
    return {name: t["measured_ms"] for name, t in timed.items()}


def train_supernet(args, space, data, loss_fn) -> OneShotSupernet:
    """The one-shot supernet, trained ``--supernet-epochs`` (resumable per epoch) with the budget's data."""
    run = RunDir(args.out / "supernet", resumed=True)
    torch.manual_seed(0)
    net = OneShotSupernet(space)
    opt = build_optimizer(net.weight_parameters(), "adamw", 5e-3, 1e-4)
    loader = torch.utils.data.DataLoader(data.train, batch_size=args.batch_size, drop_last=True,
                                         sampler=EpochSampler(len(data.train), 0))
    sched = build_scheduler(opt, "cosine", args.supernet_epochs * len(loader), 5e-4)
    start, rng = 0, random.Random(0)
    if run.has_checkpoint("supernet.pt"):
        state = run.load_checkpoint("supernet.pt")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.setstate(_tuple(state["rng"]))
        start = state["epoch"]
    for epoch in range(start, args.supernet_epochs):
        data.train.set_epoch(epoch)
        loader.sampler.set_epoch(epoch)
        stats = train_epoch(net, loader, loss_fn, opt, forward=one_shot_forward(space, rng), scheduler=sched,
                            desc=f"supernet epoch {epoch + 1}/{args.supernet_epochs}")
        print(f"supernet epoch {epoch + 1}/{args.supernet_epochs}: loss {stats['loss']:.4f} "
              f"({stats['seconds']:.0f} s)", flush=True)
        run.path.mkdir(parents=True, exist_ok=True)
        run.save_checkpoint({"epoch": epoch + 1, "model": net.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "rng": _plain(rng.getstate())}, "supernet.pt")
    return net


def _plain(state):
    return [_plain(s) for s in state] if isinstance(state, (tuple, list)) else state


def _tuple(state):
    return tuple(_tuple(s) for s in state) if isinstance(state, list) else state


def zero_cost(args, space, archs: list[dict], data, loss_fn) -> dict:
    """grad_norm, snip and synflow of every architecture at its seed-0 initialisation, on one training batch."""
    data.train.set_epoch(0)
    batch = next(iter(torch.utils.data.DataLoader(data.train, batch_size=args.batch_size,
                                                  sampler=EpochSampler(len(data.train), 0))))
    out = {}
    for a in archs:
        torch.manual_seed(0)
        model = build_model(nested_spec(space, load_genotype(a["genotype"], space)))
        out[a["name"]] = {"grad_norm": grad_norm(model, batch[0], batch[1], loss_fn),
                          "snip": snip(model, batch[0], batch[1], loss_fn),
                          "synflow": synflow(model, (1, 1, args.crop, args.crop))}
    return out


def inherited(args, space, archs: list[dict], net: OneShotSupernet, data, loss_fn) -> dict:
    """Each architecture on the supernet's weights: validation IoU and loss without and with re-estimated BN."""
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    val = eval_loader(data.val)
    recal = torch.utils.data.DataLoader(data.train, batch_size=args.batch_size,
                                        sampler=EpochSampler(len(data.train), 1))
    out = {}
    for a in archs:
        g = load_genotype(a["genotype"], space)
        net.load_state_dict(trained)
        forward = lambda m, x: m(x, g)  # noqa: E731
        plain = evaluate(net, val, forward=forward, loss_fn=loss_fn, desc="inherited")
        data.train.set_epoch(10_000)
        recalibrate_bn(net, lambda x: net(x, g), [b for _, b in zip(range(args.bn_batches), recal)])
        bn = evaluate(net, val, forward=forward, loss_fn=loss_fn, desc="inherited, BN re-estimated")
        out[a["name"]] = {"supernet_val_iou": plain["iou"], "supernet_val_loss": plain["loss"],
                          "supernet_bn_val_iou": bn["iou"], "supernet_bn_val_loss": bn["loss"]}
    net.load_state_dict(trained)
    return out


STATIC = ("params", "macs", "predicted_ms")  # from the ground truth's rows (higher = more capacity)
COMPUTED = {"grad_norm": 1, "snip": 1, "synflow": 1, "supernet_val_iou": 1, "supernet_val_loss": -1,
            "supernet_bn_val_iou": 1, "supernet_bn_val_loss": -1}  # signal -> sign that makes higher = better
LOSS_EPOCHS = (1, 2, 3, 5)


def score(rows: list[dict], signals: dict) -> dict:
    """tau and rho of every signal against the mean test IoU over seeds, and the seed-to-seed ceiling."""
    by_arch: dict = {}
    for r in rows:
        by_arch.setdefault(r["arch"], {})[r["seed"]] = r
    done = {a: s for a, s in by_arch.items() if all(k in s for k in SEEDS)}
    truth = {a: statistics.fmean(s[k]["test_iou"] for k in SEEDS) for a, s in done.items()}
    result = {"n_archs": len(done),
              "ceiling_seed0_vs_seed1": rank_agreement({a: s[0]["test_iou"] for a, s in done.items()},
                                                       {a: s[1]["test_iou"] for a, s in done.items()}),
              "val_iou_mean": rank_agreement({a: statistics.fmean(s[k]["val_iou"] for k in SEEDS)
                                              for a, s in done.items()}, truth), "signals": {}}
    for name in STATIC:
        result["signals"][name] = rank_agreement({a: s[0][name] for a, s in done.items()}, truth)
    for name, sign in COMPUTED.items():
        got = {a: signals.get(a, {}).get(name) for a in done}
        result["signals"][name] = rank_agreement({a: None if v is None else sign * v for a, v in got.items()},
                                                 truth)
    for k in LOSS_EPOCHS:  # one seed's training loss against the other seed's test IoU, both pairings averaged
        for label, fn in ((f"train_loss_epoch{k}", lambda ls: -ls[k - 1] if len(ls) >= k else None),
                          (f"tse_epochs1-{k}", lambda ls: -sum(ls[:k]) if len(ls) >= k else None)):
            pairs = [rank_agreement({a: fn(json.loads(s[1 - t]["epoch_losses"])) for a, s in done.items()},
                                    {a: s[t]["test_iou"] for a, s in done.items()}) for t in SEEDS]
            result["signals"][label] = {"n": pairs[0]["n"], "cross_seed": True, **{
                key: statistics.fmean(p[key] for p in pairs) if all(p[key] is not None for p in pairs) else None
                for key in ("kendall_tau", "spearman_rho")}}
    return result


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=GT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=str(SHARED / "NUAA-SIRST"))
    p.add_argument("--split", default=None)
    p.add_argument("--spread", type=int, default=11, help="random architectures spread over the latency range")
    p.add_argument("--min-ms", type=float, default=2.0, help="lowest latency target of the spread (ms; at least "
                   "twice the cheapest network)")
    p.add_argument("--max-ms", type=float, default=100.0, help="highest latency target of the spread (ms)")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--include", type=Path, nargs="*", default=[], help="search_vs_random output folders whose "
                                                                        "networks join the ground truth")
    p.add_argument("--space", default="rep_nested", help="search space (default rep_nested)")
    p.add_argument("--table", type=Path, default=None, help="latency table (default: the space's shipped cpu t1)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", choices=["auto", "fp32", "fp32-cl", "bf16"], default="auto")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--supernet-epochs", type=int, default=20)
    p.add_argument("--bn-batches", type=int, default=8, help="training batches to re-estimate BN statistics with")
    p.add_argument("--no-signals", action="store_true", help="only the ground truth")
    p.add_argument("--out", type=Path, default=Path("runs/bench/rank_quality"))
    p.add_argument("--record", type=Path, default=None, help="copy OUT/rank_quality.json here")
    p.add_argument("--record-csv", type=Path, default=None, help="copy OUT/ground_truth.csv here")
    p.add_argument("--ledger", type=Path, default=None,
                   help="a committed folder (bench/data/...) that keeps the plan, genotypes, latencies, signals and "
                        "every finished retrain's metrics and log: restored into OUT at the start, updated after "
                        "each retrain, so a ground truth longer than one session accumulates over sessions")
    p.add_argument("--no-train", action="store_true", help="start no retrain: the ground truth of the finished ones")
    args = p.parse_args(argv)
    t0 = time.time()
    ledger = Ledger(args.ledger, args.out, LEDGER_FILES) if args.ledger is not None else None
    if ledger is not None:
        print(f"ledger {args.ledger}: {ledger.restore()} files restored into {args.out}", flush=True)
    space = load_space(args.space)
    table = LatencyTable.load(args.table or default_table_path(space, "cpu", 1), space=space)
    archs = plan(args, space, table)
    latency = measure(args, space, archs)
    if ledger is not None:
        ledger.save()
    budget = Budget(epochs=args.epochs, crop=args.crop, batch_size=args.batch_size, precision=args.precision,
                    threads=1 if args.jobs > 1 else None, measure_latency=False)
    data_keys = {"dataset": args.dataset, "split": args.split}
    jobs = [(budget_config(budget, {"genotype": a["genotype"], "space": args.space}, data_keys, seed),
             Path(a["folder"]) / f"seed{seed}") for seed in SEEDS for a in archs]
    def done(out: Path, k: int, n: int) -> None:
        print(f"retrain {k}/{n} done: {out}", flush=True)
        if ledger is not None:
            ledger.save()

    if not args.no_train:
        retrain_all(jobs, workers=args.jobs, done=done)
    # the command that trains (a --no-train call summarises what it trained)
    command = " ".join(["python", "bench/rank_quality.py",
                        *(a for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-train")])
    rows = ground_truth(args, archs, latency, command)
    gt = csv_text(rows)
    write_text(args.out / "ground_truth.csv", gt)
    result = {"budget": {**budget_record(args), "seeds": list(SEEDS)}, "dataset": args.dataset,
              "split": args.split, "n_rows": len(rows), "table": str(table.path), "prior": PRIOR,
              "command": command}
    if not args.no_signals:
        signals_file = args.out / "signals.json"
        signals = read_json(signals_file) if signals_file.exists() else {}
        cfg = jobs[0][0]
        data = build_data(cfg.data)
        loss_fn = build_train_loss(cfg.train.loss)
        todo = [a for a in archs if "grad_norm" not in signals.get(a["name"], {})]
        for name, values in zero_cost(args, space, todo, data, loss_fn).items():
            signals.setdefault(name, {}).update(values)
        write_json(signals_file, signals)
        todo = [a for a in archs if "supernet_val_iou" not in signals.get(a["name"], {})]
        if todo:
            net = train_supernet(args, space, data, loss_fn)
            for name, values in inherited(args, space, todo, net, data, loss_fn).items():
                signals.setdefault(name, {}).update(values)
            write_json(signals_file, signals)
        result["supernet_epochs"] = args.supernet_epochs
        result.update(score(rows, signals))
        print_table(result)
    result["wall_seconds_this_call"] = round(time.time() - t0, 1)
    result["environment"] = environment()
    write_json(args.out / "rank_quality.json", result)
    for src, dst in ((args.out / "rank_quality.json", args.record), (args.out / "ground_truth.csv", args.record_csv)):
        if dst is not None:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    if ledger is not None:
        ledger.save()
    print(f"written: {args.out / 'rank_quality.json'}, {args.out / 'ground_truth.csv'} ({len(rows)} rows)")
    return 0


def print_table(result: dict) -> None:
    f = lambda v: "-" if v is None else f"{v:+.3f}"  # noqa: E731
    c = result["ceiling_seed0_vs_seed1"]
    print(f"{result['n_archs']} architectures; ceiling (seed 0 vs seed 1 test IoU): tau {f(c['kendall_tau'])}, "
          f"rho {f(c['spearman_rho'])}")
    print(f"{'signal':<26}{'tau':>8}{'rho':>8}")
    for name, r in result["signals"].items():
        print(f"{name:<26}{f(r['kendall_tau']):>8}{f(r['spearman_rho']):>8}")


if __name__ == "__main__":
    sys.exit(main())
