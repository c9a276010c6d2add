"""Does the latency term move the architecture? Search with several latency weights, same seed, and measure.

For each lambda: ``hnanas search`` (quick preset by default) into ``OUT/l<lambda>``, then every derived network is
exported in deploy form and measured with ONNX Runtime on the table's device and threads (interleaved rounds,
as ``hnanas profile validate``). Prints a table and writes JSON; the check is that the table's predicted latency
never increases with lambda and that the largest lambda is faster than lambda = 0 when measured.

    python bench/search_lambda.py [--weights 0,0.1,1] [--seed 0] [--preset quick] [--out runs/bench/lambda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hnanas.fileio import write_json
from hnanas.latency.profiler import export_network, measure_networks
from hnanas.nas.genotype import load_genotype
from hnanas.nas.space import load_space
from hnanas.runs import RunDir
from hnanas.search.config import SearchConfig, resolve_config
from hnanas.search.run import run_search


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="0,0.1,1", help="comma-separated latency weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="quick")
    p.add_argument("--space", default="rep_nested")
    p.add_argument("--dataset", default=None)
    p.add_argument("--out", type=Path, default=Path("runs/bench/lambda"))
    p.add_argument("--json", type=Path, default=None, help="default: OUT/search_lambda.json")
    args = p.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    rows = []
    for lam in weights:
        out = args.out / f"l{lam:g}"
        if not (out / "genotype.json").exists():
            cfg = resolve_config(args.preset, {"latency_weight": lam, "seed": args.seed, "data.seed": args.seed,
                                               "space": args.space, "data.dataset": args.dataset})
            t0 = time.time()
            run_search(cfg, out, resume=(out / "search_state.pt").exists())
            seconds = time.time() - t0
        else:
            seconds = None
        cfg = RunDir(out).read_config(SearchConfig)
        data = json.loads((out / "genotype.json").read_text())
        rows.append({"lambda": lam, "run": str(out), "search_seconds": seconds, **data["info"], "nodes": data["nodes"]})
    space = load_space(rows[0]["run"] and args.space)
    genotypes = {r["lambda"]: load_genotype(Path(r["run"]) / "genotype.json", space) for r in rows}
    table = rows[0]["table"]
    measured = measure_networks({lam: export_network(space, g) for lam, g in genotypes.items()},
                                table["device"], int(table["threads"]), rounds=5, desc="measure")
    for r in rows:
        r["measured_ms"] = measured[r["lambda"]]
    pred = [r["predicted_latency_ms"] for r in rows]
    checks = {"predicted_non_increasing": all(a >= b for a, b in zip(pred, pred[1:])),
              "largest_lambda_faster_measured": rows[-1]["measured_ms"] < rows[0]["measured_ms"]}
    print(f"{'lambda':>7} {'pred ms':>9} {'meas ms':>9} {'GMAC':>6} {'params M':>9} {'nodes':>5} {'val IoU':>8}  ops")
    for r in rows:
        iou = r.get("final_val_iou")
        ops = ", ".join(sorted({n["op"] for n in r["nodes"].values()}))
        print(f"{r['lambda']:>7g} {r['predicted_latency_ms']:>9.2f} {r['measured_ms']:>9.2f} {r['macs'] / 1e9:>6.2f} "
              f"{r['params'] / 1e6:>9.3f} {len(r['nodes']):>5} {100 * iou if iou is not None else float('nan'):>7.1f}%  "
              f"{ops}")
    print("checks:", checks)
    write_json(args.json or args.out / "search_lambda.json", {"rows": rows, "checks": checks, "seed": args.seed,
                                                             "preset": args.preset})
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
