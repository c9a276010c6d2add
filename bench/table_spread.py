"""Run-to-run spread of a whole latency-table profile: two profiles of the same space and settings, compared on
their shared entries and on what they price for random networks (issue 4's "run-to-run spread" target).

    cp latency_tables/hna_nested_cpu_t1.csv /tmp/a.csv; cp latency_tables/hna_nested_cpu_t1.json /tmp/a.json
    hnanas profile --device cpu --space hna_nested --threads 1 --fresh
    python bench/table_spread.py /tmp/a.csv latency_tables/hna_nested_cpu_t1.csv --json runs/bench/spread.json

Layout conversions are left out (they are priced per network from both tables alike); a network's figure is
the sum of the op entries it executes (its blocks at their input widths).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from hnanas.fileio import read_json, write_json
from hnanas.latency.entries import KEY_COLUMNS
from hnanas.latency.table import LatencyTable, sidecar_path
from hnanas.nas.genotype import sample_genotype
from hnanas.nas.network import node_in_channels
from hnanas.nas.space import load_space


def network_op_ms(table: LatencyTable, space, genotype) -> float:
    """Sum of the op entries of ``genotype``'s network (its nodes' blocks, as ``LatencyTable.op_ms`` prices them)."""
    return sum(table.op_ms(space, op, node_in_channels(space, ins), node) for node, ins, op in genotype.nodes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", help="table CSV of the first profile")
    p.add_argument("second", help="table CSV of the second profile (same space)")
    p.add_argument("--n", type=int, default=20, help="random networks (seeds 0..n-1, as validation)")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)
    metas = [read_json(sidecar_path(x)) for x in (args.first, args.second)]
    if metas[0]["space_hash"] != metas[1]["space_hash"]:
        raise SystemExit("table_spread: the two tables are of different spaces")
    space = load_space(metas[0]["space"])
    a, b = (pd.read_csv(x, keep_default_na=False) for x in (args.first, args.second))
    m = a.merge(b, on=KEY_COLUMNS, suffixes=("_a", "_b"))
    m = m[(m.kind != "reorder") & (m.median_ms_a >= 0.5)]
    entry = (m.median_ms_b / m.median_ms_a - 1) * 100
    ta, tb = (LatencyTable(f, meta) for f, meta in zip((a, b), metas))
    nets = np.array([network_op_ms(tb, space, g) / network_op_ms(ta, space, g) - 1
                     for g in (sample_genotype(space, k) for k in range(args.n))]) * 100
    shift = float(np.median(nets))
    out = {"space": space.name, "first": args.first, "second": args.second,
           "first_date": metas[0].get("date"), "second_date": metas[1].get("date"),
           "entries_compared": int(len(m)), "entry_median_abs_pct": float(np.median(np.abs(entry))),
           "networks": args.n, "network_median_pct": shift, "network_max_abs_pct": float(np.abs(nets).max()),
           "network_median_abs_pct_around_shift": float(np.median(np.abs(nets - shift)))}
    print(f"{'what':<52}{'value':>10}")
    print(f"{'entries >= 0.5 ms compared':<52}{out['entries_compared']:>10}")
    print(f"{'entry median |difference| (%)':<52}{out['entry_median_abs_pct']:>10.1f}")
    print(f"{'network op sums: median difference (%)':<52}{shift:>+10.1f}")
    around = out["network_median_abs_pct_around_shift"]
    print(f"{'network op sums: median |difference - median| (%)':<52}{around:>10.1f}")
    print(f"{'network op sums: max |difference| (%)':<52}{out['network_max_abs_pct']:>10.1f}")
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
