"""bench/latency_repeat.py: the networks of a comparison's networks.json, one process's timings, the summary."""

from __future__ import annotations

import json

import pytest

from _helpers import load_bench
from hnanas.fileio import write_json
from hnanas.nas.space import load_space


def _networks_file(tmp_path, genotype_path):
    nets = tmp_path / "cmp" / "networks.json"
    write_json(nets, {"networks": [{"name": "random_0", "role": "random", "genotype": genotype_path,
                                    "space": "rep_nested", "predicted_ms": 5.0}]})
    return nets


def test_a_worker_times_each_network_and_a_copied_ledger_finds_its_genotypes(tmp_path):
    bench = load_bench("latency_repeat")
    space = load_space("rep_nested")
    from hnanas.nas.genotype import sample_genotype

    sample_genotype(space, 0, keep_prob=0.2).save(tmp_path / "cmp" / "genotypes" / "random_0.json")
    nets = _networks_file(tmp_path, "runs/bench/elsewhere/genotypes/random_0.json")  # the path it ran under
    assert bench.networks(nets)["random_0"]["genotype"] == str(tmp_path / "cmp" / "genotypes" / "random_0.json")
    out = tmp_path / "times.json"
    bench.worker(nets, out)
    times = json.loads(out.read_text())
    assert set(times) == {"random_0"} and times["random_0"] > 0


def test_the_summary_gives_each_allocators_median_range_and_ratio():
    bench = load_bench("latency_repeat")
    runs = {"libc": [{"a": 10.0}, {"a": 14.0}, {"a": 12.0}], "tcmalloc": [{"a": 9.0}, {"a": 9.0}, {"a": 15.0}]}
    (row,) = bench.summary(runs, {"a": 11.0})
    assert row["libc"]["median_ms"] == 12.0 and (row["libc"]["min_ms"], row["libc"]["max_ms"]) == (10.0, 14.0)
    assert row["tcmalloc_over_libc"] == pytest.approx(9.0 / 12.0)
    text = bench.table([row], ["libc", "tcmalloc"])
    assert "| a | 11.00 | 12.00 (10.0-14.0) | 9.00 (9.0-15.0) | 0.75 |" in text
    assert text.splitlines()[1] == "|---|---|---|---|---|"
