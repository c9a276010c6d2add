"""Does a network's deploy-form latency depend on its weights? Trained checkpoints against the same networks with
freshly initialised weights (hnanas.pipeline.export.spec_latency), timed interleaved in one run.

The comparison benches time every network from its spec, before any retrain (``time_networks``), on the grounds
that the exported graph, and so the work, is the same whatever the weights hold. This checks that on real
checkpoints: per checkpoint, ``--rounds`` rounds of (trained, fresh) fresh ONNX Runtime sessions (cpu, 1 thread,
median of each session's timed runs), in alternating order; prints the medians and their ratio and writes JSON.

    python bench/trained_vs_fresh_latency.py runs/bench/svr_nudt/nets/*/seed0/best.pt --json runs/bench/tvf.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from hnanas.envinfo import environment
from hnanas.fileio import write_json
from hnanas.pipeline.deploy import measure_latency
from hnanas.pipeline.export import export_run, spec_export
from hnanas.pipeline.sources import spec_name
from hnanas.runs import load_checkpoint


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path, help="retrain checkpoints (best.pt)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per checkpoint (default 5)")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    rows = []
    print(f"{'network':<34}{'trained ms':>12}{'fresh ms':>10}{'fresh/trained':>15}")
    for ckpt in args.checkpoints:
        spec = dict(load_checkpoint(ckpt)["model_spec"])
        with tempfile.TemporaryDirectory() as tmp:
            trained = export_run(checkpoint=ckpt, out=Path(tmp) / "trained.onnx").path.read_bytes()
        fresh = spec_export(spec)
        times: dict[str, list[float]] = {"trained": [], "fresh": []}
        for r in range(args.rounds):
            order = (("trained", trained), ("fresh", fresh)) if r % 2 == 0 else (("fresh", fresh), ("trained", trained))
            for name, data in order:
                times[name].append(measure_latency(data, spec, devices=["cpu"], threads=1, sessions=1)["cpu"]
                                   ["measured_ms"])
        t, f = statistics.median(times["trained"]), statistics.median(times["fresh"])
        rows.append({"checkpoint": str(ckpt), "network": spec_name(spec), "trained_ms": t, "fresh_ms": f,
                     "ratio": f / t, "trained_rounds_ms": times["trained"], "fresh_rounds_ms": times["fresh"]})
        print(f"{str(ckpt.parent.parent.name):<34}{t:>12.2f}{f:>10.2f}{f / t:>15.3f}", flush=True)
    ratios = [r["ratio"] for r in rows]
    print(f"fresh/trained: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f} "
          f"over {len(rows)} networks")
    if args.json is not None:
        write_json(args.json, {"rows": rows, "rounds": args.rounds, "environment": environment(),
                               "command": " ".join(["python", "bench/trained_vs_fresh_latency.py",
                                                    *(argv or sys.argv[1:])])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
