"""bench/compare.py: where each seed's retrain goes, and the per-network summary over seeds."""

from __future__ import annotations

import argparse

import pytest

from _helpers import load_bench


def test_seed_folders_keep_the_single_seed_layout(tmp_path):
    bench = load_bench("compare")
    assert bench.retrain_folder("search:hna_nested", tmp_path, 0) == tmp_path / "search_hna_nested" / "retrain"
    assert bench.retrain_folder("search:hna_nested", tmp_path, 2) == tmp_path / "search_hna_nested" / "retrain_seed2"
    assert bench.retrain_folder("model:dnanet", tmp_path, 0) == tmp_path / "model_dnanet"
    assert bench.retrain_folder("genotype:dense_res3@hna_nested", tmp_path, 1) == \
        tmp_path / "genotype_dense_res3_hna_nested_seed1"


def test_summary_is_mean_and_spread_over_seeds_per_network():
    bench = load_bench("compare")
    base = {"genotype": "g", "params": 10, "macs": 20, "cpu_predicted_ms": 5.0, "niou": 0.5, "pd": 0.9, "fa": 1e-4}
    rows = [dict(base, net="model:a", seed=0, iou=0.20, cpu_measured_ms=7.0),
            dict(base, net="model:a", seed=1, iou=0.30, cpu_measured_ms=9.0),
            dict(base, net="model:a", seed=2, iou=0.25, cpu_measured_ms=8.5),
            dict(base, net="model:b", seed=0, iou=0.40, cpu_measured_ms=None)]
    a, b = bench.summarise(rows, ["model:a", "model:b", "model:c"], [0, 1, 2])
    assert a["seeds"] == [0, 1, 2] and a["iou_values"] == [0.20, 0.30, 0.25]
    assert a["iou_mean"] == pytest.approx(0.25) and a["iou_std"] == pytest.approx((0.05 ** 2 * 2 / 3) ** 0.5)
    assert a["cpu_measured_ms"] == 8.5 and a["pd_std"] == pytest.approx(0.0)
    assert b["iou_mean"] == 0.40 and b["iou_std"] is None and b["cpu_measured_ms"] is None


def test_a_reused_search_folder_must_match_the_requested_space_and_latency_settings(tmp_path):
    """compare.py and search_vs_random.py reuse a finished search folder through search_once, only if it was
    searched in the same space with the same latency settings."""
    from hnanas.errors import HnanasError
    from hnanas.fileio import write_yaml
    from hnanas.search.config import resolve_config
    from hnanas.search.run import search_once
    cfg = resolve_config("quick", {"latency_weight": 0.01})
    write_yaml(tmp_path / "config.yaml", {"space": "rep_nested", "latency_weight": 0.01, "latency_loss": "add-linear",
                                          "target_latency_ms": None})
    (tmp_path / "genotype.json").write_text("{}")
    assert search_once(cfg, tmp_path) == tmp_path  # finished: reused, nothing run
    hinge = resolve_config("quick", {"latency_weight": 1.0, "latency_loss": "hinge", "target_latency_ms": 47.0})
    with pytest.raises(HnanasError, match="another output folder"):
        search_once(hinge, tmp_path)
    with pytest.raises(HnanasError, match="'space': 'rep_nested'"):
        search_once(resolve_config("quick", {"latency_weight": 0.01, "space": "hna_nested"}), tmp_path)


def test_every_retrain_chooses_its_checkpoint_on_the_whole_validation_subset_every_epoch():
    """The quick preset scores the first 32 validation images every few epochs; a comparison scores all of them
    after every epoch (a None change would have kept the preset's 32)."""
    args = argparse.Namespace(dataset="synthetic", split=None, data_root=None, crop=128, epochs=15, batch_size=8,
                              preset="quick", precision="auto")
    cfg = load_bench("compare").retrain_config({"baseline": "repisd"}, args, seed=1)
    assert cfg.train.val_max_images is None
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.val_every, cfg.train.seed) == (15, 8, 1, 1)
    assert (cfg.data.crop_size, cfg.latency.threads, cfg.latency.devices) == (128, 1, ["cpu"])
