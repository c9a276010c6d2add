"""How well does ``hnanas profile quick`` price this machine? The shipped table against its transfer to this CPU,
on random networks exported as deployed, timed here in one run.

1. ``quick``: the transfer of ``--table`` (default: the shipped table of the space) to this machine, timed
   (export of the reference networks with the TorchScript exporter, their timing, the fit), written to ``--out``;
2. ``--n`` random networks of the space (``profile validate``'s seeds), exported with the deployment exporter
   (``dynamo=True``) *and* the TorchScript exporter the transfer uses, timed in ``--rounds`` interleaved rounds
   (fresh session each, fastest session kept, like ``profile validate``);
3. per table: MAPE, worst error, bias and Spearman rho of its predictions against the deploy exports; and the
   TorchScript/deploy latency ratio (is timing the faster exporter's graph sound?).

    python bench/quick_profile.py --json bench/data/quick_profile_<cpu>.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hnanas.envinfo import environment
from hnanas.fileio import write_json
from hnanas.latency.correction import error_stats
from hnanas.latency.profiler import export_network, measure_networks
from hnanas.latency.table import LatencyTable, table_dirs
from hnanas.latency.transfer import TransferSettings, quick_profile
from hnanas.nas.genotype import sample_genotype
from hnanas.nas.network import derive
from hnanas.nas.space import load_space
from hnanas.runtime import export_onnx


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="rep_nested")
    p.add_argument("--table", type=Path, default=None, help="table to transfer (default: the shipped one, t1)")
    p.add_argument("--n", type=int, default=10, help="random networks to judge on (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    p.add_argument("--out", type=Path, default=None, help="where the transferred table goes (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    space = load_space(args.space)
    base_path = args.table or next(d / f"{space.name}_cpu_t1.csv" for d in table_dirs())
    base = LatencyTable.load(base_path, space=space)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / f"{space.name}_cpu_t1.csv"
        t0 = time.monotonic()
        quick = quick_profile(base_path, space, out, TransferSettings())
        seconds = time.monotonic() - t0
    print(f"transfer: {seconds:.0f} s, {len(quick.meta['transfer']['references'])} reference networks, ridge "
          f"{quick.meta['transfer']['ridge']}, leave-one-out MAPE on them {quick.meta['transfer']['loo_mape']:.1f} %")
    graphs = [sample_genotype(space, k) for k in range(args.n)]
    example = torch.randn(1, space.input_channels, *space.deploy_size)
    models = {}
    for g in graphs:
        models[f"{g.name}/deploy"] = export_network(space, g)
        models[f"{g.name}/torchscript"] = export_onnx(derive(space, g, deploy=True).eval(), example, dynamo=False)
    measured = measure_networks(models, "cpu", 1, rounds=args.rounds)
    nets = [{"genotype": g.name, "measured_ms": measured[f"{g.name}/deploy"],
             "torchscript_ms": measured[f"{g.name}/torchscript"],
             "shipped_ms": base.predict(g, space).total_ms, "quick_ms": quick.predict(g, space).total_ms}
            for g in graphs]
    meas = np.array([r["measured_ms"] for r in nets])
    stats = {name: error_stats(np.array([r[f"{name}_ms"] for r in nets]), meas) for name in ("shipped", "quick")}
    ratio = np.array([r["torchscript_ms"] / r["measured_ms"] for r in nets])
    print(f"{'network':<12}{'measured':>10}{'shipped':>10}{'quick':>10}{'torchscript':>13}")
    for r in nets:
        print(f"{r['genotype']:<12}{r['measured_ms']:>10.1f}{r['shipped_ms']:>10.1f}{r['quick_ms']:>10.1f}"
              f"{r['torchscript_ms']:>13.1f}")
    for name, s in stats.items():
        print(f"{name:<8} MAPE {s['mape']:.1f} %, max {s['max_abs_pct_err']:.1f} %, bias {s['bias']:+.1f} %, "
              f"Spearman {s['spearman']:.3f}")
    print(f"torchscript/deploy latency: median {np.median(ratio):.3f}, range {ratio.min():.3f}-{ratio.max():.3f}")
    if args.json:
        t = quick.meta["transfer"]
        write_json(args.json, {
            "networks": nets, "stats": stats, "torchscript_over_deploy": ratio.tolist(), "transfer_seconds": seconds,
            "transfer": {k: t[k] for k in ("base_table", "base_cpu_model", "ridge", "loo_mape", "scales",
                                           "overhead_ms", "references")},
            "environment": environment(),
            "command": " ".join(["python", "bench/quick_profile.py", *(argv if argv is not None else sys.argv[1:])])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
