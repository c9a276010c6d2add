"""Helpers shared by tests (not fixtures): synthetic latency tables, loading a bench script as a module."""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path

import pandas as pd

from hnanas.latency.entries import FOLLOWING_KINDS, nchw_variant, space_entries
from hnanas.latency.table import FORMAT, LatencyTable


def synthetic_table(space, overhead=0.3) -> LatencyTable:
    """Costs from a formula and layouts from a hash, so layout conversions are exercised too; resamples and
    concats have their ``@nchw`` rows (from the hash too: some follow their inputs' layout, some force theirs)."""
    rows = []
    entries = space_entries(space)
    entries += [nchw_variant(e) for e in entries if e.kind in FOLLOWING_KINDS]
    for i, e in enumerate(entries):
        ms = 1e-6 * e.c_in * e.c_out * e.h * e.w * (1 + zlib.crc32(e.name.encode()) % 7) + 0.01 * (i % 5) + 0.02
        h = zlib.crc32(e.key.encode())
        lin, lout = ("", "") if e.kind == "reorder" else (("nchw", "nchwc")[h % 2], ("nchw", "nchwc")[(h >> 3) % 2])
        rows.append({**e.row(), "median_ms": ms, "p10_ms": ms * 0.98, "p90_ms": ms * 1.02, "n": 10,
                     "in_layout": lin, "out_layout": lout})
    meta = {"format": FORMAT, "space": space.name, "space_hash": space.hash, "device": "cpu", "threads": 1,
            "fixed_overhead_ms": overhead, "network_factor": 1.07}
    return LatencyTable(pd.DataFrame(rows), meta)


def load_bench(name: str):
    """``bench/<name>.py`` (not a package) as a module, for tests of its functions and ``main``."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
