"""How repeatable is one network's measured latency from one process to the next, with glibc's allocator and
with tcmalloc? Times every network of a comparison's ``networks.json`` (``bench/search_vs_random.py`` writes
one) in N fresh processes per allocator, interleaved (libc, tcmalloc, libc, ...), each process as
``search_vs_random`` times them (:func:`hnanas.pipeline.export.spec_latency`: cpu, 1 thread, the median of 3
fresh sessions). Prints a table (per network: each allocator's median and range over the processes, and the
tcmalloc / libc ratio of medians) and writes JSON.

    python bench/latency_repeat.py --networks runs/bench/svr_demo/networks.json --processes 6 \\
        --record bench/data/latency_repeat_demo.json

Sessions inside one process agree closely; this measures what they cannot: the spread between processes, which
is what separates a table's profile from a later measurement of the same network.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hnanas.cli import TCMALLOC_PATHS
from hnanas.envinfo import environment
from hnanas.fileio import read_json, write_json

TCMALLOC = next((p for p in TCMALLOC_PATHS if os.path.exists(p)), None)  # where the hnanas command looks for it


def entries(path: Path) -> list[dict]:
    """The network entries of a comparison's networks.json."""
    data = read_json(path)
    return data["networks"] if isinstance(data, dict) else data


def networks(path: Path) -> dict[str, dict]:
    """``{name: model}`` of a comparison's networks.json (the ``model_of`` form of search_vs_random); a genotype
    path that no longer resolves (a ledger copied under bench/data) is looked up in the file's genotypes/."""
    nets = entries(path)

    def genotype(g: str) -> str:
        return g if Path(g).is_file() else str(path.parent / "genotypes" / Path(g).name)

    return {n["name"]: ({"baseline": n["baseline"]} if "baseline" in n else
                        {"genotype": genotype(n["genotype"]), "space": n["space"]}) for n in nets}


def worker(nets_file: Path, out: Path) -> None:
    """One process: time every network once (median of 3 sessions) and write ``{name: ms}``."""
    from hnanas.pipeline.export import spec_latency
    from hnanas.pipeline.sources import resolve_spec

    times = {name: spec_latency(resolve_spec(**model))["cpu"]["measured_ms"]
             for name, model in networks(nets_file).items()}
    out.write_text(json.dumps(times))


def run_process(nets_file: Path, allocator: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["HNANAS_NO_TCMALLOC"] = "1"
    if allocator == "tcmalloc":
        env["LD_PRELOAD"] = TCMALLOC
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "times.json"
        subprocess.run([sys.executable, __file__, "--networks", str(nets_file), "--worker", str(out)], env=env,
                       check=True)
        return json.loads(out.read_text())


def summary(runs: dict[str, list[dict[str, float]]], predicted: dict[str, float | None]) -> list[dict]:
    rows = []
    for name in runs["libc"][0]:
        row = {"network": name, "predicted_ms": predicted.get(name)}
        for alloc, done in runs.items():
            ms = [r[name] for r in done]
            row[alloc] = {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "runs_ms": ms}
        if "tcmalloc" in runs:
            row["tcmalloc_over_libc"] = row["tcmalloc"]["median_ms"] / row["libc"]["median_ms"]
        rows.append(row)
    return rows


def table(rows: list[dict], allocators: list[str]) -> str:
    head = "| network | predicted ms | " + " | ".join(f"{a} median (range) ms" for a in allocators)
    head += " | tcmalloc / libc |" if "tcmalloc" in allocators else " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["network"], f"{r['predicted_ms']:.2f}" if r["predicted_ms"] else "-"]
        cells += [f"{r[a]['median_ms']:.2f} ({r[a]['min_ms']:.1f}-{r[a]['max_ms']:.1f})" for a in allocators]
        if "tcmalloc" in allocators:
            cells.append(f"{r['tcmalloc_over_libc']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", type=Path, required=True, help="a comparison's networks.json")
    p.add_argument("--processes", type=int, default=6, help="fresh processes per allocator (default 6)")
    p.add_argument("--record", type=Path, help="write the result as JSON here")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if not args.networks.is_file():
        raise SystemExit(f"latency_repeat: {args.networks}: no such file; pass a comparison's networks.json "
                         f"(bench/search_vs_random.py writes OUT/networks.json)")
    if args.worker:
        return worker(args.networks, args.worker)
    if args.processes < 1:
        raise SystemExit("latency_repeat: --processes must be 1 or more")
    lost = [m["genotype"] for m in networks(args.networks).values() if "genotype" in m
            and not Path(m["genotype"]).is_file()]
    if lost:
        raise SystemExit(f"latency_repeat: {args.networks}: genotype {lost[0]} not found (paths are relative to the "
                         f"folder the comparison ran in: run this from there)")
    allocators = ["libc", "tcmalloc"] if TCMALLOC else ["libc"]
    if len(allocators) == 1:
        print(f"latency_repeat: tcmalloc not installed (none of {', '.join(TCMALLOC_PATHS)}): timing with glibc's "
              f"allocator only", file=sys.stderr)
    runs: dict[str, list[dict[str, float]]] = {a: [] for a in allocators}
    for i in range(args.processes):
        for alloc in allocators:
            runs[alloc].append(run_process(args.networks, alloc))
            print(f"process {i + 1}/{args.processes} ({alloc}) done", flush=True)
    rows = summary(runs, {n["name"]: n.get("predicted_ms") for n in entries(args.networks)})
    print(table(rows, allocators))
    if "tcmalloc" in allocators:
        print(f"median tcmalloc / libc over networks: "
              f"{statistics.median(r['tcmalloc_over_libc'] for r in rows):.2f}")
    if args.record:
        write_json(args.record, {"networks_file": str(args.networks), "processes": args.processes, "rows": rows,
                                 "command": " ".join(sys.argv), "environment": environment()})
        print(f"written: {args.record}")


if __name__ == "__main__":
    main()
