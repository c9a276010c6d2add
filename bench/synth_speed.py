"""Benchmark of the synthetic generator: images per second, rendering only and rendering + writing PNGs.

    PYTHONPATH=. python bench/synth_speed.py [--sizes 128 256 512] [--n 200] [--workers 1 2] [--out FILE]

Prints a table and writes JSON (default ``runs/bench/synth_speed.json``) with the environment. The target is
at least 100 images/s at 256x256 on one core. Each figure is the best of ``--repeats`` runs, since other
processes on a shared machine only ever slow a run down.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hnanas.data.synthetic import SynthParams, render_sample, write_synthetic  # noqa: E402
from hnanas.envinfo import environment  # noqa: E402
from hnanas.fileio import write_json  # noqa: E402


def time_render(params: SynthParams) -> float:
    start = time.perf_counter()
    for i in range(params.n):
        render_sample(params, i)
    return time.perf_counter() - start


def time_write(params: SynthParams, workers: int) -> float:
    with tempfile.TemporaryDirectory(prefix="hnanas-synth-bench-") as tmp:
        start = time.perf_counter()
        write_synthetic(Path(tmp) / "data", params, workers=workers)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--n", type=int, default=200, help="images per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="runs/bench/synth_speed.json")
    args = parser.parse_args(argv)

    rows = []
    for size in args.sizes:
        params = SynthParams(n=args.n, size=size, seed=0)
        render_s = min(time_render(params) for _ in range(args.repeats))
        rows.append({"size": size, "mode": "render", "workers": 1, "n": args.n, "seconds": render_s,
                     "images_per_s": args.n / render_s})
        for workers in args.workers:
            write_s = min(time_write(params, workers) for _ in range(args.repeats))
            rows.append({"size": size, "mode": "render+write", "workers": workers, "n": args.n,
                         "seconds": write_s, "images_per_s": args.n / write_s})

    print(f"{'size':>6} {'mode':<13} {'workers':>7} {'images':>6} {'seconds':>8} {'images/s':>9}")
    for r in rows:
        print(f"{r['size']:>6} {r['mode']:<13} {r['workers']:>7} {r['n']:>6} {r['seconds']:>8.2f} "
              f"{r['images_per_s']:>9.1f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    write_json(args.out, {"benchmark": "synth_speed", "rows": rows, "load_average_1min": load,
                          "environment": environment()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
