"""bench/table_spread.py: a table compared with itself has no spread; a uniformly slower copy shifts by that."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from _helpers import load_bench
from hnanas.fileio import read_json

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "latency_tables" / "hna_nested_cpu_t1.csv"


def test_spread_of_a_table_with_itself_and_a_slower_copy(tmp_path):
    slow = tmp_path / "slow.csv"
    frame = pd.read_csv(TABLE, keep_default_na=False)
    frame["median_ms"] *= 1.1
    frame.to_csv(slow, index=False)
    shutil.copy(TABLE.with_suffix(".json"), slow.with_suffix(".json"))
    bench = load_bench("table_spread")
    assert bench.main([str(TABLE), str(TABLE), "--n", "4", "--json", str(tmp_path / "same.json")]) == 0
    same = read_json(tmp_path / "same.json")
    assert same["entries_compared"] > 1000 and same["entry_median_abs_pct"] == 0 and same["network_max_abs_pct"] == 0
    bench.main([str(TABLE), str(slow), "--n", "4", "--json", str(tmp_path / "slow.json")])
    shifted = read_json(tmp_path / "slow.json")
    assert shifted["network_median_pct"] == pytest.approx(10.0, abs=1e-6)
    assert shifted["network_median_abs_pct_around_shift"] == pytest.approx(0.0, abs=1e-6)
