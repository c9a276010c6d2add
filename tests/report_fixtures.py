"""Hand-made run folders for the report tests: the files hnanas search and retrain write, with known values."""

from __future__ import annotations

from pathlib import Path

from _helpers import synthetic_table
from hnanas.fileio import write_json, write_yaml
from hnanas.nas.genotype import make_genotype, named_genotypes
from hnanas.nas.models import nested_spec
from hnanas.nas.space import load_space

SEARCH_LOG = ("step,stage,epoch,train_loss,val_iou,expected_latency_ms,derived_latency_ms\n"
              "100000,1,1,1.0,0.1,3.0,2.5\n200000,2,1,0.9,0.2,2.0,1.9\n")


def small_genotype(space):
    """0_0 -> 1_0 -> 2_0 -> 1_1 (upsampled to 0_2) and 0_0 -> 0_2: 0_1 is pruned."""
    return make_genotype(space, {"0_0": ["input"], "1_0": ["0_0"], "2_0": ["1_0"], "1_1": ["2_0"],
                                 "0_2": ["1_1", "0_0"]}, {"0_0": "res3", "1_0": "repconv", "2_0": "mb3e2",
                                                         "1_1": "res3", "0_2": "repconv"}, name="searched")


def make_search(path: Path, genotype, *, latency_weight: float = 0.1, table_threads: int = 1) -> Path:
    """A finished search run folder (genotype.json with its info block, config.yaml, search_log.csv)."""
    space = load_space("tiny")
    pred = synthetic_table(space).predict(genotype, space)
    info = {"predicted_latency_ms": pred.total_ms, "latency_breakdown": pred.to_dict(), "macs": 123_000_000,
            "params": 45_000, "table": {"path": "/tables/tiny_cpu_t1.csv", "device": "cpu", "threads": table_threads},
            "latency_weight": latency_weight, "target_latency_ms": None, "dataset": "syn", "split": "default",
            "final_val_iou": 0.25}
    genotype.save(path / "genotype.json", info=info)
    write_yaml(path / "config.yaml", {"space": "tiny", "data": {"dataset": "/data/syn", "split": None}})
    (path / "search_log.csv").write_text(SEARCH_LOG)
    return path


def make_retrain(path: Path, model: dict, spec: dict, *, iou: float, measured: float, predicted: float | None,
                 threads: int = 1) -> Path:
    """A finished retrain folder (config.yaml, model.json, metrics.json, latency.json)."""
    write_yaml(path / "config.yaml", {"model": model, "preset": "quick", "data": {"dataset": "/data/syn"}})
    write_json(path / "model.json", spec)
    write_json(path / "metrics.json", {
        "iou": iou, "niou": iou - 0.05, "pd": 0.9, "fa": 2e-5, "split": "default", "dataset": "syn", "epochs": 40,
        "val_iou": iou + 0.01, "best_epoch": 35, "model": "x", "params": 45_000, "macs": 123_000_000,
        "training": {"epochs": 40, "steps": 640, "batch_size": 16, "crop_size": 64, "optimizer": "adamw",
                     "seconds": 150.0}})
    write_json(path / "latency.json", {"cpu": {"measured_ms": measured, "predicted_ms": predicted, "threads": threads,
                                               "providers": ["CPUExecutionProvider"]}})
    return path


def make_runs(root: Path) -> dict[str, Path]:
    """searched (with retrain), search_only (no retrain), dnanet (baseline --model), dn_res3 (named genotype)."""
    space = load_space("tiny")
    g = small_genotype(space)
    searched = make_search(root / "searched", g, latency_weight=0.1)
    make_retrain(searched / "retrain", {"genotype": str(searched / "genotype.json"), "space": "tiny"},
                 nested_spec(space, g), iou=0.6, measured=2.0, predicted=None)
    other = make_genotype(space, {"0_0": ["input"], "0_2": ["0_0"]}, "res3", name="searched")
    search_only = make_search(root / "search_only", other, latency_weight=1.0)
    dnanet = make_retrain(root / "dnanet", {"baseline": "dnanet"}, {"kind": "dnanet", "widths": [16, 32, 64, 128, 256]},
                          iou=0.7, measured=9.0, predicted=None)
    dn = named_genotypes(space)["dnanet_res3"]
    dn_res3 = make_retrain(root / "dn_res3" / "retrain", {"genotype": "dnanet_res3", "space": "tiny"},
                           nested_spec(space, dn), iou=0.5, measured=3.0, predicted=None).parent
    return {"searched": searched, "search_only": search_only, "dnanet": dnanet, "dn_res3": dn_res3}
