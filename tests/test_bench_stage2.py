"""bench/stage2_warmup.py runs stage 2 alone on a given topology, once per mode, and summarises each run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from _helpers import load_bench, synthetic_table
from hnanas.data.synthetic import SynthParams, write_synthetic
from hnanas.fileio import read_json
from hnanas.nas.space import load_space


def test_stage2_warmup_runs_each_mode_and_writes_its_summary(tmp_path):
    write_synthetic(tmp_path / "syn", SynthParams(n=48, size=64, seed=0))
    table = synthetic_table(load_space("tiny")).save(tmp_path / "tiny_cpu_t1.csv")
    out = tmp_path / "out"
    assert load_bench("stage2_warmup").main([
        "--space", "tiny", "--topology", "dense_res3", "--dataset", str(tmp_path / "syn"), "--table", str(table),
        "--crop", "32", "--batch-size", "8", "--modes", "proxyless:4:1", "mixture:4:1", "--out", str(out)]) == 0
    result = read_json(out / "stage2_warmup.json")["results"]
    assert [(r["mode"], r["epochs"], r["warmup_epochs"]) for r in result] == [("proxyless", 4, 1), ("mixture", 4, 1)]
    for r in result:
        assert r["first_loss"] > 0 and r["last_loss"] > 0 and r["predicted_ms"] > 0 and r["seconds"] > 0
        folder = out / f"{r['mode']}_e4_w1"
        assert Path(r["out"]) == folder and (folder / "genotype.json").is_file()
        log = pd.read_csv(folder / "search_log.csv")
        assert len(log) == r["epochs"] and log["train_loss"].iloc[-1] == r["last_loss"]
        # warm-up epochs leave the op distributions uniform; the architecture epoch moves them
        assert log["entropy"].iloc[-1] == pytest.approx(r["final_entropy"], rel=1e-4)
        assert log["entropy"].iloc[-1] < log["entropy"].iloc[0]
