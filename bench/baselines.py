"""Size and ONNX Runtime latency of the named baseline networks (DNANet, the RepISD-Net-style ECB U-Net).

For each named baseline spec (``hnanas.nas.models.named_models()``): parameters of the train and deploy forms, MACs
of the deploy form at the given sizes (``hnanas.ops.count_macs``: convolutions, linear layers, matrix
products), and the latency of the deploy form exported with ``dynamo=True`` at the first size, measured by
``hnanas.runtime.measure_model`` in several fresh sessions (the reported figure is the median of the session
medians; the session spread shows how stable the machine was). Random weights: latency does not depend on them.

    python bench/baselines.py                                  # all named baselines, 256², 1 thread, 3 sessions
    python bench/baselines.py --names repisd --sizes 256,512 --threads 2 --json runs/bench/baselines.json
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from hnanas.envinfo import environment
from hnanas.fileio import write_json
from hnanas.nas.models import build_model, named_models
from hnanas.ops import count_macs, count_params
from hnanas.progress import progress
from hnanas.runtime import export_onnx, measure_model


def measure_baseline(name: str, sizes: list[int], threads: int, sessions: int, device: str = "cpu") -> dict:
    spec = named_models()[name]
    train, deploy = build_model(spec), build_model(spec, deploy=True).eval()
    row: dict = {"name": name, "spec": spec, "params_train": count_params(train), "params_deploy": count_params(deploy),
                 "gmac_deploy": {str(s): count_macs(deploy, (1, s, s)) / 1e9 for s in sizes}}
    size = sizes[0]
    model = export_onnx(deploy, torch.zeros(1, 1, size, size), dynamo=True)
    medians, settings = [], {}
    for _ in progress(range(sessions), desc=f"{name} sessions", unit="session", leave=False):
        timing, settings = measure_model(model, device, threads=threads)
        medians.append(timing.median_ms)
    row.update({"latency_size": size, "latency_ms": statistics.median(medians), "session_medians_ms": medians,
                "settings": settings})
    return row


def format_rows(rows: list[dict], sizes: list[int]) -> str:
    head = f"{'name':<14}{'params train':>14}{'params deploy':>15}" + "".join(
        f"{'GMAC@' + str(s):>11}" for s in sizes) + f"{'latency ms':>12}  session medians"
    lines = [head]
    for r in rows:
        lines.append(f"{r['name']:<14}{r['params_train'] / 1e6:>13.3f}M{r['params_deploy'] / 1e6:>14.3f}M"
                     + "".join(f"{r['gmac_deploy'][str(s)]:>11.2f}" for s in sizes)
                     + f"{r['latency_ms']:>12.1f}  " + ", ".join(f"{m:.1f}" for m in r["session_medians_ms"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="+", default=None, help="named baselines (default: all)")
    parser.add_argument("--sizes", default="256", help="comma-separated square input sizes; latency at the first")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    parser.add_argument("--sessions", type=int, default=3, help="fresh sessions timed per network (default 3)")
    parser.add_argument("--json", default=None, help="also write the rows and the environment to this JSON file")
    args = parser.parse_args(argv)
    names = args.names or sorted(named_models())
    unknown = [n for n in names if n not in named_models()]
    if unknown:
        parser.error(f"unknown baseline(s) {', '.join(unknown)}; known: {', '.join(sorted(named_models()))}")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [measure_baseline(n, sizes, args.threads, args.sessions) for n in progress(names, desc="baselines")]
    print(format_rows(rows, sizes))
    print(f"ONNX Runtime, {args.threads} thread(s), {sizes[0]}², median of {args.sessions} session medians")
    if args.json:
        write_json(args.json, {"rows": rows, "environment": environment()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
