"""Benchmark of the re-param ops: exact fusion everywhere, and fused latency equal to a plain 3×3 conv.

Targets (from the ops brief):
- train vs deploy ``max_rel_err`` ≤ 1e-5 (float32) and ≤ 1e-10 (float64) for every op, stride 1 and 2, equal and
  unequal channel counts, at every benchmark shape (re-param ops; ``--equivalence-ops all`` adds the plain ops,
  which only fold BN);
- the deploy latency of each 3×3-family re-param op (``rep3x3``: ecb, ecbsr, repconv, cdc) ≤ 1.02 × a plain
  ``Conv2d(C, C, 3, padding=1)`` + ReLU of the same shape, with the train/deploy speed-up reported.

Latency is measured by ``hnanas.ops.verify`` (ONNX Runtime, train/deploy/plain interleaved over rounds, median of
round medians, spread reported). Prints tables and writes JSON; exit status 1 if an equivalence check fails.

    python bench/ops_verify.py                      # 16@256², 32@128², 64@64², 1 thread, 7 rounds
    python bench/ops_verify.py --quick              # small scale check that everything runs (~1 min)
    python bench/ops_verify.py --shapes 16,256,256 --threads 2 --json runs/bench/ops_verify_t2.json
"""

from __future__ import annotations

import argparse
import sys

from hnanas.envinfo import environment
from hnanas.fileio import write_json
from hnanas.ops import list_ops, op_info
from hnanas.ops.equivalence import RELATIVE_ERROR_DEFINITION, check_equivalence
from hnanas.ops.verify import verify_ops
from hnanas.progress import progress

DEPLOY_OVER_PLAIN_TARGET = 1.02
DEFAULT_SHAPES = "16,256,256;32,128,128;64,64,64"
QUICK_SHAPES = "16,64,64;32,32,32"


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = [tuple(int(v) for v in part.split(",")) for part in text.split(";") if part.strip()]
    if not shapes or any(len(s) != 3 or min(s) < 1 for s in shapes):
        raise argparse.ArgumentTypeError(f"expected C,H,W[;C,H,W...], got {text!r}")
    return shapes  # type: ignore[return-value]


def channel_configs(c: int) -> list[tuple[int, int, int]]:
    """(c_in, c_out, stride): same shape, stride 2, a wider concat feeding a node, and a widening down-sample."""
    return [(c, c, 1), (c, c, 2), (2 * c, c, 1), (c, 2 * c, 2)]


def run_equivalence(shapes, ops, seed: int) -> list[dict]:
    cases = [(name, ci, co, s, (h, w)) for c, h, w in shapes for ci, co, s in channel_configs(c) for name in ops
             if not (op_info(name).same_shape_only and (ci != co or s != 1))]
    results = []
    for name, ci, co, s, size in progress(cases, desc="equivalence", unit="case"):
        results.append(check_equivalence(name, ci, co, s, size, seed=seed).to_dict())
    return results


def format_equivalence(results: list[dict]) -> str:
    worst: dict[str, dict] = {}
    for r in results:
        w = worst.setdefault(r["op"], {"n": 0, "f32": 0.0, "f64": 0.0, "failed": 0})
        w["n"] += 1
        w["f32"], w["f64"] = max(w["f32"], r["max_rel_err"]), max(w["f64"], r["max_rel_err_f64"])
        w["failed"] += not r["passed"]
    lines = [f"{'op':<9} {'re-param':>8} {'cases':>5} {'worst f32':>10} {'worst f64':>10} {'failed':>6}"]
    for name, w in worst.items():
        rep = "yes" if op_info(name).reparameterizable else "no"
        lines.append(f"{name:<9} {rep:>8} {w['n']:>5} {w['f32']:>10.2e} {w['f64']:>10.2e} {w['failed']:>6}")
    lines.append(f"max_rel_err = {RELATIVE_ERROR_DEFINITION}; targets 1e-05 (f32), 1e-10 (f64)")
    return "\n".join(lines)


def latency_targets(reports: dict) -> list[dict]:
    rows = []
    for shape, report in reports.items():
        for name, entry in report["ops"].items():
            if op_info(name).family != "rep3x3":
                continue
            rows.append({"shape": shape, "op": name, "deploy_over_plain": entry["deploy_over_plain"],
                         "ratio_spread": entry["spread"]["deploy_over_plain"],
                         "train_over_deploy": entry["train_over_deploy"],
                         "deploy_graph_equals_plain": entry["deploy_graph_equals_plain"],
                         "met": entry["deploy_over_plain"] <= DEPLOY_OVER_PLAIN_TARGET})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", type=parse_shapes, default=None, metavar="C,H,W;...",
                        help=f"shapes (default {DEFAULT_SHAPES}; --quick: {QUICK_SHAPES})")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 7, quick 3)")
    parser.add_argument("--min-time", type=float, default=None, help="seconds per visit (default 0.25, quick 0.05)")
    parser.add_argument("--equivalence-ops", choices=("reparam", "all"), default="reparam",
                        help="ops in the equivalence sweep: the re-param ops (default) or all ops (plain ops fold BN "
                             "too; slow at full size: float64 depthwise convs run ~50x slower than float32 on CPU)")
    parser.add_argument("--skip-latency", action="store_true", help="only run the equivalence sweep")
    parser.add_argument("--quick", action="store_true", help="small shapes and few repeats: checks the bench runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="runs/bench/ops_verify.json", help="output JSON")
    args = parser.parse_args(argv)
    shapes = args.shapes or parse_shapes(QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    rounds = args.rounds or (3 if args.quick else 7)
    min_time = args.min_time or (0.05 if args.quick else 0.25)

    eq_ops = list_ops() if args.equivalence_ops == "all" else list_ops(reparameterizable=True)
    equivalence = run_equivalence(shapes, eq_ops, args.seed)
    print(format_equivalence(equivalence))
    reports = {}
    if not args.skip_latency:
        for shape in shapes:
            report = verify_ops(None, shape, threads=args.threads, rounds=rounds, min_time_s=min_time, seed=args.seed)
            print(f"\nlatency at {shape[0]}x{shape[1]}x{shape[2]}:\n{report.format_table()}")
            reports["x".join(map(str, shape))] = report.to_dict()
    targets = latency_targets(reports)
    for row in targets:
        print(f"{row['shape']:>11} {row['op']:<8} deploy/3x3 {row['deploy_over_plain']:.3f} "
              f"(target <= {DEPLOY_OVER_PLAIN_TARGET}, ratio spread {row['ratio_spread']:.1%}) "
              f"{'met' if row['met'] else 'MISSED'}; same graph as the 3x3: "
              f"{'yes' if row['deploy_graph_equals_plain'] else 'NO'}; train/deploy {row['train_over_deploy']:.2f}x")
    equivalence_passed = all(r["passed"] for r in equivalence) and all(r["passed"] for r in reports.values())
    result = {
        "equivalence": equivalence,
        "latency": reports,
        "targets": {"equivalence_passed": equivalence_passed, "deploy_over_plain_target": DEPLOY_OVER_PLAIN_TARGET,
                    "latency": targets},
        "settings": {"shapes": [list(s) for s in shapes], "threads": args.threads, "rounds": rounds,
                     "min_time_s_per_visit": min_time, "seed": args.seed, "equivalence_ops": eq_ops,
                     "channel_configs": "(C,C,1), (C,C,2), (2C,C,1), (C,2C,2) as (c_in, c_out, stride)",
                     "environment": environment()},
    }
    write_json(args.json, result)
    print(f"\nequivalence {'passed' if equivalence_passed else 'FAILED'}; wrote {args.json}")
    return 0 if equivalence_passed else 1


if __name__ == "__main__":
    sys.exit(main())
