"""Training speed of each train path (hnanas.train.fastpath) on this machine, and whether the fast path trains
networks as accurately (issue 14, part 0).

Speed: images/s of a full training step (forward, SoftIoU+BCE, backward, AdamW step) of fp32 (NCHW, the reference
path), fp32-cl (channels_last) and, where the CPU computes bfloat16 natively (AMX-BF16, AVX512-BF16) or with
``--paths`` naming it, bf16 autocast, on: a ``rep_nested`` network (``--genotype``, e.g. a search's
genotype.json; default the space's ``dnanet_res3``), a random ``rep_nested`` network, DNANet, the RepISD-style
net, and the stage-1 (edge gates) and stage-2 (sampled op paths) supernets of the search. Paths are interleaved
within each round (``--rounds``), each timed over ``--steps`` steps after one warm-up step on a fresh copy of the
model; the table gives the median over rounds and the speed-up over fp32. The CPU model and its bf16/AMX flags
are printed and recorded.

Accuracy (``--accuracy``): the network of ``--genotype`` retrained with one budget (hnanas.pipeline.budget) for seeds
``--seeds`` on fp32 and on the fast path (``--fast``; default bf16 where native, else fp32-cl): test IoU mean
and spread per path, to check the fast path stays within the seed spread.

    python bench/train_speed.py --json runs/bench/train_speed.json
    python bench/train_speed.py --genotype runs/bench/svr_nuaa/search/genotype.json --accuracy \\
        --dataset ../shared/datasets/NUAA-SIRST --epochs 15 --out runs/bench/train_speed_acc
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

from hnanas.envinfo import environment
from hnanas.fileio import read_json, write_json
from hnanas.nas.genotype import load_genotype, named_genotypes, sample_genotype
from hnanas.nas.models import build_model, named_models, nested_spec
from hnanas.nas.space import load_space
from hnanas.pipeline.budget import Budget, budget_config, retrain_all
from hnanas.search.supernet import OpSupernet, TopologySupernet
from hnanas.train.fastpath import forward_loss, native_bf16, path_named
from hnanas.train.optim import build_train_loss

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def networks(genotype: str) -> dict[str, tuple[torch.nn.Module, object]]:
    """name -> (model, forward(model, x)) of every network timed."""
    space = load_space("rep_nested")
    g = load_genotype(genotype, space)
    torch.manual_seed(0)
    plain = lambda m, x: m(x)  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    stage1 = TopologySupernet(space)
    stage2 = OpSupernet(space, named_genotypes(space)["dnanet_res3"])
    return {
        f"rep_nested {g.name or Path(genotype).stem}": (build_model(nested_spec(space, g)), plain),
        "rep_nested random_3": (build_model(nested_spec(space, sample_genotype(space, 3))), plain),
        "dnanet": (build_model(named_models()["dnanet"]), plain),
        "repisd": (build_model(named_models()["repisd"]), plain),
        "stage-1 supernet": (stage1, lambda m, x: m(x, m.sample_gates(1.0, gen))),
        "stage-2 supernet (dnanet_res3 topology)": (stage2, lambda m, x: m(x, m.sample_paths(1, gen, uniform=True))),
    }


def step_seconds(model, forward, path, images, masks, loss_fn, steps: int) -> float:
    m = path.prepare(copy.deepcopy(model)).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        forward_loss(m, images, masks, loss_fn, forward, path, torch.device("cpu")).backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def speed(args: argparse.Namespace) -> dict:
    nets = networks(args.genotype)
    paths = [path_named(p) for p in args.paths]
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 1, args.crop, args.crop, generator=g)
    masks = (torch.rand(args.batch_size, 1, args.crop, args.crop, generator=g) > 0.99).float()
    loss_fn = build_train_loss("softiou+bce")
    seconds: dict = {name: {p.name: [] for p in paths} for name in nets}
    for r in range(args.rounds):
        for name, (model, forward) in nets.items():
            for p in paths:
                s = step_seconds(model, forward, p, images, masks, loss_fn, args.steps)
                seconds[name][p.name].append(s)
                print(f"round {r + 1}/{args.rounds} {name:<40} {p.name:<8} {1000 * s:8.1f} ms/step", flush=True)
    rows = []
    for name in nets:
        ref = statistics.median(seconds[name]["fp32"]) if "fp32" in seconds[name] else None
        for p in paths:
            med = statistics.median(seconds[name][p.name])
            rows.append({"network": name, "path": p.name, "ms_per_step": 1000 * med,
                         "images_per_s": args.batch_size / med, "speedup_vs_fp32": ref / med if ref else None,
                         "rounds_ms": [1000 * s for s in seconds[name][p.name]]})
    return {"rows": rows, "batch_size": args.batch_size, "crop": args.crop, "steps": args.steps,
            "rounds": args.rounds, "threads": torch.get_num_threads()}


def accuracy(args: argparse.Namespace) -> dict:
    fast = args.fast or ("bf16" if native_bf16(torch.device("cpu")) else "fp32-cl")
    data = {"dataset": args.dataset, "split": args.split}
    jobs, where = [], {}
    for precision in ("fp32", fast):
        budget = Budget(epochs=args.epochs, crop=args.crop, batch_size=args.batch_size, precision=precision,
                        threads=1 if args.jobs > 1 else None, measure_latency=False)
        for seed in args.seeds:
            out = args.out / precision / f"seed{seed}"
            jobs.append((budget_config(budget, {"genotype": args.genotype, "space": "rep_nested"}, data, seed), out))
            where[(precision, seed)] = out
    retrain_all(jobs, workers=args.jobs)
    result = {}
    for precision in ("fp32", fast):
        runs = [read_json(where[(precision, s)] / "metrics.json") for s in args.seeds]
        ious = [m["iou"] for m in runs]
        result[precision] = {"iou_values": ious, "iou_mean": statistics.fmean(ious),
                             "iou_std": statistics.stdev(ious) if len(ious) > 1 else None,
                             "train_seconds": [m["training"]["seconds"] for m in runs]}
        print(f"{precision:<8} test IoU {', '.join(f'{100 * v:.2f}' for v in ious)} % "
              f"(mean {100 * result[precision]['iou_mean']:.2f}); training "
              f"{', '.join(f'{s / 60:.1f}' for s in result[precision]['train_seconds'])} min", flush=True)
    return {"fast": fast, "paths": result, "epochs": args.epochs, "seeds": args.seeds, "dataset": args.dataset}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--genotype", default="dnanet_res3", help="rep_nested genotype file or name (default dnanet_res3)")
    p.add_argument("--paths", nargs="+", default=None, help="train paths to time (default fp32 fp32-cl, and bf16 "
                                                            "where the CPU computes it natively)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per path and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--accuracy", action="store_true", help="also retrain --genotype on fp32 and on --fast")
    p.add_argument("--fast", choices=["fp32-cl", "bf16"], default=None)
    p.add_argument("--dataset", default=str(SHARED / "NUAA-SIRST"))
    p.add_argument("--split", default=None)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/bench/train_speed"))
    p.add_argument("--json", type=Path, default=None, help="write the results here (default OUT/train_speed.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    args.paths = args.paths or ["fp32", "fp32-cl", *(["bf16"] if native_bf16(cpu) else [])]
    env = environment()
    print(f"CPU: {env.get('cpu_model')} ({env.get('cpu_identity')}); native bf16: {native_bf16(cpu)}; torch "
          f"threads {torch.get_num_threads()}", flush=True)
    result = {"cpu_model": env.get("cpu_model"), "cpu_identity": env.get("cpu_identity"),
              "native_bf16": native_bf16(cpu),
              "speed": speed(args), "environment": env,
              "command": " ".join(["python", "bench/train_speed.py", *(argv if argv is not None else sys.argv[1:])])}
    print(f"\n{'network':<42}{'path':<9}{'ms/step':>9}{'images/s':>10}{'x fp32':>8}")
    for r in result["speed"]["rows"]:
        x = "-" if r["speedup_vs_fp32"] is None else f"{r['speedup_vs_fp32']:.2f}"
        print(f"{r['network']:<42}{r['path']:<9}{r['ms_per_step']:>9.1f}{r['images_per_s']:>10.1f}{x:>8}")
    if args.accuracy:
        result["accuracy"] = accuracy(args)
    write_json(args.json or args.out / "train_speed.json", result)
    print(f"written: {args.json or args.out / 'train_speed.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
