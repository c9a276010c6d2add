"""hnanas.pipeline.ledger (a bench's small files kept across sessions) and hnanas.pipeline.export.time_networks (every
network of a comparison timed once, on one CPU model)."""

from __future__ import annotations

import pytest

from hnanas.envinfo import cpu_model
from hnanas.errors import HnanasError
from hnanas.fileio import read_json, write_json, write_text
from hnanas.nas.genotype import make_genotype
from hnanas.nas.models import nested_spec
from hnanas.nas.space import load_space
from hnanas.pipeline.export import time_networks
from hnanas.pipeline.ledger import Ledger


def _out(root):
    write_json(root / "plan.json", {"networks": ["a", "b"]})
    write_text(root / "big.onnx", "not kept")
    write_json(root / "nets/a/seed0/metrics.json", {"iou": 0.5})  # finished
    write_text(root / "nets/a/seed0/retrain_log.csv", "epoch,loss\n1,0.9\n")
    write_text(root / "nets/a/seed0/best.pt", "checkpoint: not kept")
    write_text(root / "nets/b/seed0/retrain_log.csv", "epoch,loss\n1,0.8\n")  # unfinished: not kept
    write_text(root / "nets/b/seed0/model.json", "{}")


def test_the_ledger_keeps_plans_and_finished_retrains_only(tmp_path):
    out, folder = tmp_path / "out", tmp_path / "ledger"
    _out(out)
    ledger = Ledger(folder, out, ("plan.json",))
    assert ledger.save() == 3
    kept = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert kept == ["nets/a/seed0/metrics.json", "nets/a/seed0/retrain_log.csv", "plan.json"]
    assert ledger.save() == 0  # nothing changed: nothing rewritten
    write_json(out / "plan.json", {"networks": ["a", "b", "c"]})
    assert ledger.save() == 1 and read_json(folder / "plan.json")["networks"] == ["a", "b", "c"]


def test_a_fresh_output_folder_is_restored_from_the_ledger_without_overwriting(tmp_path):
    out, folder = tmp_path / "out", tmp_path / "ledger"
    _out(out)
    Ledger(folder, out, ("plan.json",)).save()
    fresh = tmp_path / "next_session"
    write_json(fresh / "plan.json", {"networks": ["mine"]})  # the output folder's own file wins
    assert Ledger(folder, fresh, ("plan.json",)).restore() == 2
    assert read_json(fresh / "plan.json") == {"networks": ["mine"]}
    assert read_json(fresh / "nets/a/seed0/metrics.json") == {"iou": 0.5}
    assert not (fresh / "nets/b").exists() and not (fresh / "nets/a/seed0/best.pt").exists()
    assert Ledger(tmp_path / "none", fresh, ("plan.json",)).restore() == 0  # no ledger yet: nothing to restore
    write_text(tmp_path / "file", "x")
    with pytest.raises(HnanasError, match="must be a folder"):
        Ledger(tmp_path / "file", fresh, ("plan.json",)).restore()


def test_networks_are_timed_once_per_cpu_model(tmp_path):
    space = load_space("tiny")
    inputs = {"0_0": ["input"], "1_0": ["0_0"], "2_0": ["1_0"], "0_1": ["0_0", "1_0"], "1_1": ["1_0", "2_0"],
              "0_2": ["0_1", "1_1"]}
    spec = nested_spec(space, make_genotype(space, inputs, "res3", name="n"))
    cache = tmp_path / "latency.json"
    seen = []
    timed = time_networks({"n": spec}, cache, report=lambda name, t: seen.append(name))
    assert seen == ["n"] and timed["n"]["measured_ms"] > 0 and timed["n"]["cpu_model"] == cpu_model()
    assert timed["n"]["size"] == list(space.deploy_size) and len(timed["n"]["sessions_ms"]) == 3
    assert time_networks({"n": spec}, cache, report=lambda name, t: seen.append(name)) == timed and seen == ["n"]
    write_json(cache, {"n": {**timed["n"], "cpu_model": "another CPU", "measured_ms": 1e6}})
    again = time_networks({"n": spec}, cache, report=lambda name, t: seen.append(name))
    assert seen == ["n", "n"] and again["n"]["cpu_model"] == cpu_model() and again["n"]["measured_ms"] < 1e6
