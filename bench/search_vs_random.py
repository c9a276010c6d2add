"""Does the search search? The searched network against random networks at its predicted latency (issue 14).

A hardware-aware search must beat random networks of its space *at the same latency*, trained the same way, over
several seeds (Li & Talwalkar 2019, Yang et al. 2020; ../shared/reference/search-eval.md). This bench:

1. takes a search run (``--search DIR``), or runs a search into OUT/search (``--search-preset``, default the quick
   two-stage one with λ ``--latency-weight``; the comparison's dataset; resumed if interrupted);
2. samples ``--k`` random genotypes of the same space whose predicted latency, by the same table, is within
   ``--tol`` of the searched network's (hnanas.latency.matched: a broad prior, so every latency band is
   reachable), plus the latency-only ablation (the searched topology with the ops the latency term alone picks:
   what stage 2 derives with its accuracy term switched off) and the baselines for scale;
3. retrains every network from scratch with one budget (hnanas.pipeline.budget: epochs, crops, batch, the quick
   preset's optimiser and loss, checkpoint chosen after every epoch on the whole validation subset) for every
   seed of ``--seeds`` (baselines: ``--baseline-seeds``), ``--jobs`` at a time, each on one thread; finished
   retrains are skipped and interrupted ones resumed, so rerunning the command continues it;
4. times each network's deploy-form ONNX export before any retrain starts, with nothing else running (ONNX
   Runtime, cpu, 1 thread, the median of 3 fresh sessions, freshly initialised weights: the same graph as the
   trained export; hnanas.pipeline.export.time_networks), and writes
   OUT/search_vs_random.{json,md,png}: per network the mean ± sample std over seeds of IoU, nIoU, Pd, Fa, the
   measured and predicted latency; the searched network's percentile among
   the random ones, its gap to their mean in pooled seed standard deviations and a bootstrap 95 % interval of
   that gap (hnanas.report.versus). ``hnanas report OUT`` shows the same table.

    python bench/search_vs_random.py --out runs/bench/svr_nuaa                    # NUAA-SIRST idx_427, 2 cores
    python bench/search_vs_random.py --dataset ../shared/datasets/NUDT-SIRST --split 50_50 --epochs 8 \\
        --out runs/bench/svr_nudt --record bench/data/search_vs_random_NUDT-SIRST.json
    python bench/search_vs_random.py ... --ledger bench/data/search_vs_random_NUDT-SIRST   # over several sessions
    python bench/search_vs_random.py ... --ledger bench/data/search_vs_random_NUDT-SIRST --no-train  # partial summary
    python bench/search_vs_random.py --search runs/my_search --out runs/bench/svr_mine    # an existing search
    python bench/search_vs_random.py --epochs 400 --crop 256 --batch-size 16 --jobs 1 ...  # a GPU budget

``--search-preset cpu`` makes the search here the halving strategy (hnanas.search.halving) instead of the quick
two-stage one. ``--at-ms MS`` compares at a given latency: the random networks are drawn at MS ± ``--tol`` and the
search made here gets that band as its budget (hinge, ``halving.floor``); a given ``--search`` must lie in it.
``--reuse LEDGER`` copies another comparison's finished retrains of the same random genotypes (same budget, data
and seed) instead of training them again: two searches compared at one latency share their random networks (and
the searched network's, where that ledger's search found the same network).

    python bench/search_vs_random.py --dataset ../shared/datasets/NUDT-SIRST --split 50_50 --epochs 8 \
        --search-preset cpu --at-ms 53.43374615096447 --no-ablation --baselines --out runs/bench/svr_nudt_cpu \
        --ledger bench/data/search_vs_random_NUDT-SIRST_cpu --reuse bench/data/search_vs_random_NUDT-SIRST

``--ledger DIR`` keeps what the comparison needs to go on (plan, genotypes, the search's genotypes and log, the
latency cache, every finished retrain's metrics) in a committed folder (hnanas.pipeline.ledger): a run folder is not
kept between machine sessions, the ledger is, so a comparison of several hours accumulates over sessions.

Defaults are sized for the 2-core CPU: K = 8, seeds 0 1 2, 15 epochs of 128-px crops in batches of 8 (510 steps on
NUAA-SIRST idx_427), two retrains at a time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from hnanas.config import assignments
from hnanas.envinfo import environment
from hnanas.errors import HnanasError
from hnanas.fileio import read_json, write_json, write_text
from hnanas.latency.matched import PRIOR, latency_only_ops, sample_at_latency
from hnanas.nas.genotype import load_genotype
from hnanas.nas.space import load_space
from hnanas.pipeline.budget import Budget, budget_config, retrain_all
from hnanas.pipeline.export import time_networks
from hnanas.pipeline.ledger import Ledger, reuse_retrains
from hnanas.pipeline.sources import resolve_spec
from hnanas.report.figures import draw_versus
from hnanas.report.versus import FILE, search_vs_random, summarise_networks, versus_markdown
from hnanas.runs import RunDir, read_csv_rows
from hnanas.search.config import SearchConfig, resolve_config
from hnanas.search.run import load_table, search_once

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
BUDGET_WEIGHT = 1.0  # λ of the hinge budget --at-ms gives the search here (within the band the term is 0)
# what --ledger keeps of OUT (besides every finished retrain's metrics, log and config)
LEDGER_FILES = ("networks.json", "latency.json", FILE, "search_vs_random.md", "genotypes/*.json",
                "search/genotype.json", "search/stage1_genotype.json", "search/config.yaml", "search/search_log.csv",
                "search/trials.csv", "search/finalists.csv")


def ensure_search(args: argparse.Namespace) -> Path:
    """The search run: ``--search``, else OUT/search, searched (or resumed) here with ``--search-preset``."""
    if args.search is not None:
        return args.search
    changes = {"space": args.space, "data.dataset": args.dataset, "data.split": args.split,
               "data.data_root": args.data_root, "seed": args.search_seed, "latency_weight": args.latency_weight,
               "latency_loss": args.latency_loss, "target_latency_ms": args.target_latency,
               "lr_warmup_epochs": args.lr_warmup, "output_prior": args.output_prior,  # as the retrains below
               "halving.select_threshold": args.select_threshold}
    if args.at_ms is not None:  # a budget whose band is the comparison's: [at (1 - tol), at (1 + tol)]
        changes.update({"latency_loss": "hinge", "latency_weight": BUDGET_WEIGHT,
                        "target_latency_ms": args.at_ms * (1 + args.tol),
                        "halving.floor": (1 - args.tol) / (1 + args.tol)})
    cfg = resolve_config(args.search_preset, {**changes, **assignments(args.search_set, source="--search-set")})
    if not (args.out / "search" / "genotype.json").exists():
        print(f"search: {args.search_preset} preset ({cfg.strategy}), {cfg.latency_loss} λ {cfg.latency_weight}"
              f" -> {args.out / 'search'}", flush=True)
    return search_once(cfg, args.out / "search")


def plan_networks(args: argparse.Namespace, search: Path) -> list[dict]:
    """The networks of this comparison (fixed once: OUT/networks.json), their genotype files written to
    OUT/genotypes/."""
    settings = {"search": str(search), "k": args.k, "tol": args.tol, "sample_seed": args.sample_seed,
                "ablation": not args.no_ablation, "baselines": args.baselines,
                **({"at_ms": args.at_ms} if args.at_ms is not None else {})}
    plan_file = args.out / "networks.json"
    if plan_file.exists():
        plan = read_json(plan_file)
        if plan["settings"] != settings:
            raise SystemExit(f"search_vs_random: {plan_file} was planned with {plan['settings']}, not {settings}; "
                             f"pass the same options or another --out")
        return plan["networks"]
    cfg = RunDir(search).read_config(SearchConfig)
    space = load_space(cfg.space)
    table = load_table(cfg, space)
    searched = load_genotype(search / "genotype.json", space)
    predicted = target = table.predict(searched, space).total_ms
    if args.at_ms is not None:
        if abs(predicted - args.at_ms) > args.tol * args.at_ms:
            raise SystemExit(f"search_vs_random: the searched network ({predicted:.2f} ms predicted) is not within "
                             f"{100 * args.tol:g} % of --at-ms {args.at_ms}; search inside that band or drop --at-ms")
        target = args.at_ms
    space_ref = cfg.space
    folder = args.out / "genotypes"
    # a copy beside the random ones, so that the ledger keeps the network compared when the search folder is
    # elsewhere (--search runs/demo) and the plan holds whatever becomes of that folder
    searched.save(folder / "searched.json", {"predicted_latency_ms": predicted, "search": str(search)})
    nets = [{"name": "searched", "role": "searched", "genotype": str(folder / "searched.json"), "space": space_ref,
             "predicted_ms": predicted, "nodes": len(searched.nodes)}]
    if not args.no_ablation:
        if not (search / "stage1_genotype.json").exists():
            raise SystemExit(f"search_vs_random: {search} has no stage-1 topology ({cfg.strategy} search), so no "
                             f"latency-only ablation; pass --no-ablation")
        stage1 = load_genotype(search / "stage1_genotype.json", space)
        ablation = latency_only_ops(space, table, stage1)
        ablation.save(folder / "latency_only.json", {"predicted_latency_ms": table.predict(ablation, space).total_ms})
        nets.append({"name": "latency_only", "role": "ablation", "genotype": str(folder / "latency_only.json"),
                     "space": space_ref, "predicted_ms": table.predict(ablation, space).total_ms,
                     "nodes": len(ablation.nodes)})
    for m in sample_at_latency(space, table, target, args.k, tol=args.tol, seed=args.sample_seed,
                               exclude=(searched,)):
        path = folder / f"{m.genotype.name}.json"
        m.genotype.save(path, {"predicted_latency_ms": m.predicted_ms, "prior": PRIOR})
        nets.append({"name": m.genotype.name, "role": "random", "genotype": str(path), "space": space_ref,
                     "predicted_ms": m.predicted_ms, "nodes": len(m.genotype.nodes)})
    for name in args.baselines:
        nets.append({"name": name, "role": "baseline", "baseline": name, "predicted_ms": None})
    write_json(plan_file, {"settings": settings, "target_ms": target, "table": str(table.path),
                           "prior": PRIOR, "networks": nets})
    return nets


def model_of(net: dict) -> dict:
    return {"baseline": net["baseline"]} if "baseline" in net else {"genotype": net["genotype"],
                                                                    "space": net["space"]}


def seeds_of(args: argparse.Namespace, net: dict) -> list[int]:
    return args.baseline_seeds if net["role"] == "baseline" else args.seeds


def retrain_dir(args: argparse.Namespace, net: dict, seed: int) -> Path:
    return args.out / "nets" / net["name"] / f"seed{seed}"


def measure(args: argparse.Namespace, nets: list[dict]) -> dict:
    """Each network's deploy-form latency (ONNX Runtime, cpu, 1 thread, the median of 3 fresh sessions), timed
    from its spec before any retrain starts: a quiet machine, every network on one CPU model (cached in
    OUT/latency.json; timed again whole on another CPU model)."""
    def report(name: str, timed: dict) -> None:
        predicted = next(n.get("predicted_ms") for n in nets if n["name"] == name)
        print(f"latency: {name} {timed['measured_ms']:.2f} ms measured, predicted "
              f"{predicted or float('nan'):.2f} ms", flush=True)

    return time_networks({net["name"]: resolve_spec(**model_of(net)) for net in nets}, args.out / "latency.json",
                         report=report)


def chosen_threshold(metrics: dict) -> dict:
    """A retrain that chose its threshold on validation (``--select-threshold``): that threshold and the same
    checkpoint's test IoU at the config's (0.5); nothing for one scored at the config's threshold."""
    if metrics.get("threshold_from") != "validation":
        return {}
    return {"threshold": metrics.get("threshold"),
            "iou_at_config_threshold": metrics.get("at_config_threshold", {}).get("iou")}


def collect(args: argparse.Namespace, nets: list[dict], latency: dict) -> tuple[list[dict], list[dict]]:
    rows, described = [], []
    for net in nets:
        entry = {k: net[k] for k in ("name", "role", "predicted_ms") if k in net}
        entry["nodes"] = net.get("nodes")
        entry["measured_ms"] = latency.get(net["name"], {}).get("measured_ms")
        for seed in seeds_of(args, net):
            metrics_file = retrain_dir(args, net, seed) / "metrics.json"
            if not metrics_file.exists():
                continue
            m = read_json(metrics_file)
            entry["params"], entry["macs"] = m.get("params"), m.get("macs")
            rows.append({"net": net["name"], "seed": seed, **{k: m.get(k) for k in ("iou", "niou", "pd", "fa")},
                         "val_iou": m.get("val_iou"), "best_epoch": m.get("best_epoch"),
                         "train_seconds": m.get("training", {}).get("seconds"),
                         "train_path": m.get("training", {}).get("train_path"),
                         **chosen_threshold(m)})
        described.append(entry)
    return rows, described


def search_seconds(search: Path) -> float | None:
    """Seconds the search trained and validated: two-stage's epochs, or halving's candidate epochs and its
    finalists' further runs."""
    rows = [r for f in ("search_log.csv", "trials.csv", "finalists.csv") for r in read_csv_rows(search / f)]
    return round(sum(float(r.get("seconds") or 0) for r in rows), 1) if rows else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--search", type=Path, default=None, help="a finished search run (default: OUT/search, searched "
                                                                "here with --search-preset)")
    p.add_argument("--dataset", default=str(SHARED / "NUAA-SIRST"))
    p.add_argument("--split", default=None, help="default: the dataset's official split (NUAA-SIRST idx_427)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--space", default="rep_nested", help="space of the search run made here (default rep_nested)")
    p.add_argument("--search-preset", choices=["quick", "cpu", "paper"], default="quick",
                   help="preset of the search run made here (default quick: the two-stage search; cpu: halving)")
    p.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE",
                   help="change the config of the search made here (dotted keys of the search config, e.g. "
                        "halving.min_epochs=1; repeatable)")
    p.add_argument("--search-seed", type=int, default=0,
                   help="seed of the search run made here (default 0; another seed measures how much the result "
                        "depends on it)")
    p.add_argument("--at-ms", type=float, default=None, metavar="MS",
                   help="compare at MS ± --tol instead of at the searched network's latency: the search made here "
                        "gets that band as its budget (hinge, floor), the random networks are drawn at MS")
    p.add_argument("--reuse", type=Path, default=None, metavar="LEDGER",
                   help="another comparison's ledger: its finished retrains of the same networks (same genotype, "
                        "same budget, same data) are copied in instead of trained again")
    p.add_argument("--latency-weight", type=float, default=0.01, help="λ of the search made here (default 0.01)")
    p.add_argument("--latency-loss", choices=["add-linear", "mul-log", "hinge"], default="add-linear")
    p.add_argument("--target-latency", type=float, default=None, metavar="MS")
    p.add_argument("--k", type=int, default=8, help="random networks at the searched latency (default 8)")
    p.add_argument("--tol", type=float, default=0.05, help="latency band, relative (default 0.05 = ±5 %%)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the random genotypes")
    p.add_argument("--no-ablation", action="store_true", help="leave out the latency-only ablation")
    p.add_argument("--baselines", nargs="*", default=["dnanet", "repisd"], help="baselines for scale (default "
                                                                                 "dnanet repisd; none: --baselines)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="retrain seeds (default 0 1 2)")
    p.add_argument("--baseline-seeds", type=int, nargs="+", default=None,
                   help="the baselines' seeds (default: the first of --seeds; they are there for scale)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", choices=["auto", "fp32", "fp32-cl", "bf16"], default="auto")
    p.add_argument("--lr-warmup", type=float, default=0.0, metavar="EPOCHS",
                   help="linear lr warm-up over the first EPOCHS of every retrain and of every candidate of the "
                        "search made here (optim.warmup_epochs, lr_warmup_epochs; default 0: none)")
    p.add_argument("--output-prior", type=float, default=None, metavar="P",
                   help="start every retrain and every candidate of the search made here predicting P everywhere "
                        "(train.output_prior, output_prior: the logits' bias; default: p = 0.5)")
    p.add_argument("--select-threshold", action="store_true",
                   help="every retrain chooses its decision threshold on its validation subset "
                        "(train.select_threshold) and is scored at it, instead of at 0.5; the halving search made "
                        "here ranks its candidates so too (halving.select_threshold)")
    p.add_argument("--jobs", type=int, default=2, help="retrains at a time, one thread each (default 2)")
    p.add_argument("--out", type=Path, default=Path("runs/bench/search_vs_random"))
    p.add_argument("--record", type=Path, default=None, help="also copy the summary JSON here (bench/data/...)")
    p.add_argument("--ledger", type=Path, default=None,
                   help="a committed folder (bench/data/...) that keeps the plan, the search's genotypes and every "
                        "finished retrain's metrics: restored into OUT at the start, updated after each retrain, so "
                        "a comparison longer than one session goes on where the last one stopped")
    p.add_argument("--no-train", action="store_true", help="start no retrain: summarise the finished ones (a "
                                                          "partial summary says how many are missing)")
    args = p.parse_args(argv)
    args.baseline_seeds = args.baseline_seeds or args.seeds[:1]
    if args.at_ms is not None and args.search is None and (
            args.target_latency is not None or resolve_config(args.search_preset, {}).strategy != "halving"):
        raise SystemExit("search_vs_random: --at-ms makes the search here a halving search in that band; use it "
                         "with --search-preset cpu and without --target-latency (or pass --search)")
    if args.search is not None and args.search_set:
        raise SystemExit("search_vs_random: --search-set changes the search made here; with --search there is none "
                         "(leave one of them out)")
    if len(set(args.seeds)) != len(args.seeds) or args.k < 2 or args.jobs < 1:
        raise SystemExit("search_vs_random: --seeds must be distinct, --k at least 2, --jobs at least 1")
    t0 = time.time()
    ledger = Ledger(args.ledger, args.out, LEDGER_FILES) if args.ledger is not None else None
    if ledger is not None:
        print(f"ledger {args.ledger}: {ledger.restore()} files restored into {args.out}", flush=True)
    search = ensure_search(args)
    nets = plan_networks(args, search)
    latency = measure(args, nets)
    if ledger is not None:
        ledger.save()
    budget = Budget(epochs=args.epochs, crop=args.crop, batch_size=args.batch_size, precision=args.precision,
                    threads=1 if args.jobs > 1 else None, measure_latency=False, warmup_epochs=args.lr_warmup,
                    output_prior=args.output_prior, select_threshold=args.select_threshold)
    data = {"dataset": args.dataset, "split": args.split, "data_root": args.data_root}
    # every network's first seed, then the next seeds, the (slow) baselines last: partial results stay usable
    order = sorted(((net["role"] == "baseline", seed_rank, net["name"], net, seed) for net in nets
                    for seed_rank, seed in enumerate(seeds_of(args, net))), key=lambda t: t[:3])
    jobs = [(budget_config(budget, model_of(net), data, seed), retrain_dir(args, net, seed))
            for *_, net, seed in order]
    if args.reuse is not None:
        space = load_space(nets[0]["space"])
        mine = {n["name"]: load_genotype(n["genotype"], space) for n in nets if n["role"] in ("random", "searched")}
        # the searched network's too, where that ledger's search found the same network
        filled, reused = reuse_retrains(args.reuse, jobs, mine, space, {"searched": "search/genotype.json"})
        print(f"reuse {args.reuse}: {len(filled)} finished retrains copied ({len(reused)} of this comparison's "
              f"retrains are that ledger's)", flush=True)
        reused_from = {"ledger": str(args.reuse), "retrains": sorted(str(p.relative_to(args.out)) for p in reused)}
    else:
        reused_from = None
    started = time.time()

    def done(out: Path, k: int, n: int) -> None:
        print(f"retrain {k}/{n} done: {out.relative_to(args.out)} ({(time.time() - started) / 60:.1f} min)",
              flush=True)
        if ledger is not None:
            ledger.save()

    if not args.no_train:
        retrain_all(jobs, workers=args.jobs, done=done)
    rows, described = collect(args, nets, latency)
    networks = summarise_networks(rows, described)
    result = {"networks": networks, "rows": rows, "verdict": search_vs_random(networks),
              "target_ms": read_json(args.out / "networks.json")["target_ms"], "search": str(search),
              "search_seconds": search_seconds(search), "prior": PRIOR,
              "budget": {"epochs": args.epochs, "crop": args.crop, "batch_size": args.batch_size, "preset": "quick",
                         "precision": args.precision, "lr_warmup_epochs": args.lr_warmup,
                         "output_prior": args.output_prior, "select_threshold": args.select_threshold,
                         "seeds": args.seeds,
                         "baseline_seeds": args.baseline_seeds,
                         "jobs": args.jobs, "checkpoint": "best validation IoU, every epoch, whole subset"},
              "dataset": args.dataset, "split": args.split, "k": args.k, "tol": args.tol,
              "retrains": {"finished": len(rows), "planned": len(jobs)}, "reused_from": reused_from,
              "command": " ".join(["python", "bench/search_vs_random.py",  # the command that trains
                                   *(a for a in (argv or sys.argv[1:]) if a != "--no-train")]),
              "wall_seconds_this_call": round(time.time() - t0, 1), "environment": environment()}
    write_json(args.out / FILE, result)
    text = versus_markdown(result)
    write_text(args.out / "search_vs_random.md", text + "\n")
    draw_versus(networks, args.out / "search_vs_random.png",
                title=f"Searched vs {args.k} random networks at {result['target_ms']:.1f} ms ± {100 * args.tol:g} % "
                      f"({Path(args.dataset).name} {args.split})")
    print(text)
    if args.record is not None:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out / FILE, args.record)
    if ledger is not None:
        ledger.save()
    print(f"written: {args.out / FILE}, {args.out / 'search_vs_random.md'}, {args.out / 'search_vs_random.png'}"
          f" ({len(rows)} of {len(jobs)} retrains finished)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HnanasError as exc:
        sys.exit(f"search_vs_random: {exc}")
