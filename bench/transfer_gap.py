"""Do ``profile quick``'s reference networks and ``profile validate``'s random networks slow down alike on this
CPU? Both sets exported the same way (TorchScript exporter) and timed *interleaved* in one call, so a drift of
the machine between the transfer and the validation cannot tell them apart; prints each network's measured /
shipped-raw ratio and the median per set.

    python bench/transfer_gap.py --json bench/data/transfer_gap_<cpu>.json

Written for issue 17, part 3: on the Zen 4 EPYC the transfer over-predicted the random networks by 20 % although
it fitted the references to 7.6 % (``docs/results.md``).
"""

from __future__ import annotations

import argparse

import numpy as np

from hnanas.envinfo import environment
from hnanas.fileio import write_json
from hnanas.latency.table import LatencyTable, table_dirs
from hnanas.latency.transfer import TransferSettings, measure_references, reference_networks
from hnanas.nas.genotype import sample_genotype
from hnanas.nas.space import load_space

# a subset of the present references (bench/data/transfer_gap_amd_epyc_f25m17.json was measured with the earlier
# set, which had one-op networks `only_<op>` instead of most mixed ones)
REFERENCES = ("dnanet_res3", "chain_res3", "smallest", "mixed_0", "mixed_1", "mixed_2", "mixed_3", "mixed_4",
              "mixed_5")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="rep_nested")
    p.add_argument("--n", type=int, default=10, help="random networks (profile validate's seeds 0..n-1)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    space = load_space(args.space)
    base = LatencyTable.load(next(d / f"{space.name}_cpu_t1.csv" for d in table_dirs()), space=space)
    refs = reference_networks(space, TransferSettings())
    graphs = {**{f"ref/{k}": refs[k] for k in REFERENCES if k in refs},
              **{f"rnd/{g.name}": g for g in (sample_genotype(space, k) for k in range(args.n))}}
    measured = measure_references(space, TransferSettings(rounds=args.rounds))(graphs)  # as the transfer times
    rows = {}
    for k, g in graphs.items():
        raw = base.predict(g, space).raw_ms
        rows[k] = {"measured_ms": measured[k], "shipped_raw_ms": raw, "ratio": measured[k] / raw}
        print(f"{k:18s} {measured[k]:8.1f} {raw:8.1f} {measured[k] / raw:6.2f}")
    medians = {}
    for s in ("ref", "rnd"):
        r = [v["ratio"] for k, v in rows.items() if k.startswith(s + "/")]
        medians[s] = {"median": float(np.median(r)), "min": min(r), "max": max(r)}
        print(f"{s}: median ratio {medians[s]['median']:.3f} (range {min(r):.2f}-{max(r):.2f})")
    if args.json:
        write_json(args.json, {"networks": rows, "sets": medians, "rounds": args.rounds,
                               "command": "python bench/transfer_gap.py " + " ".join(argv or []),
                               "environment": environment()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
