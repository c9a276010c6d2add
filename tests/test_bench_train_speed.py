"""bench/train_speed.py times every network on every train path, interleaved, and records the CPU."""

from __future__ import annotations

import pytest
from _helpers import load_bench
from hnanas.fileio import read_json


def test_train_speed_times_each_network_on_each_path(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert load_bench("train_speed").main(["--crop", "32", "--batch-size", "2", "--steps", "1", "--rounds", "1",
                                           "--paths", "fp32", "fp32-cl", "--json", str(out)]) == 0
    result = read_json(out)
    assert result["cpu_identity"] and isinstance(result["native_bf16"], bool)
    rows = result["speed"]["rows"]
    nets = {r["network"] for r in rows}
    assert len(nets) == 6 and any("stage-1" in n for n in nets) and any("stage-2" in n for n in nets)
    assert {r["path"] for r in rows} == {"fp32", "fp32-cl"} and len(rows) == 12
    for r in rows:
        assert len(r["rounds_ms"]) == 1 and r["ms_per_step"] > 0
        assert r["images_per_s"] == pytest.approx(2 / (r["ms_per_step"] / 1000))
        if r["path"] == "fp32":
            assert r["speedup_vs_fp32"] == 1.0
    assert "x fp32" in capsys.readouterr().out
