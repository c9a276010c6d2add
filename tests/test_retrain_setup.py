"""Retrain set-up without training: config layering, model sources, the deploy checks and the latency report."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import torch

from hnanas.errors import ConfigError, HnanasError
from hnanas.fileio import write_json, write_yaml
from hnanas.latency import table as latency_table
from hnanas.latency.entries import space_entries
from hnanas.latency.table import FORMAT, LatencyTable
from hnanas.nas.genotype import genotype_from_dict, make_genotype, named_genotypes
from hnanas.nas.models import build_model, nested_spec
from hnanas.nas.space import load_space
from hnanas.pipeline import deploy
from hnanas.pipeline.deploy import (deploy_network, export_checked, find_table, measure_latency, onnx_metadata,
                                 reparameterize_checked)
from hnanas.pipeline.presets import PRESETS, build_config
from hnanas.pipeline.sources import baseline_spec, read_search_run, resolve_spec
from hnanas.train.optim import build_train_loss

GENOTYPE = {"genotype": "dnanet_res3", "space": "tiny"}


def test_config_layers_preset_file_and_command_line(tmp_path):
    cfg = build_config("quick", GENOTYPE, base={"data": {"dataset": "NUAA-SIRST", "val_fraction": 0.1}})
    assert cfg.preset == "quick" and cfg.data.dataset == "NUAA-SIRST" and cfg.data.val_fraction == 0.1
    assert cfg.train.epochs == PRESETS["quick"]["train"]["epochs"] and cfg.optim.name == "adamw"
    paper = build_config("paper", GENOTYPE)
    assert (paper.train.epochs, paper.optim.name, paper.optim.lr, paper.data.crop_size) == (1500, "adagrad", 0.05, 256)
    write_yaml(tmp_path / "c.yaml", {"train": {"epochs": 7, "threads": None}, "optim": {"lr": 0.01}})
    cfg = build_config("paper", GENOTYPE, file=tmp_path / "c.yaml", changes={"train.epochs": 3, "train.seed": None})
    assert (cfg.train.epochs, cfg.optim.lr, cfg.train.seed, cfg.optim.name) == (3, 0.01, 0, "adagrad")
    write_yaml(tmp_path / "bad.yaml", {"train": {"epoch": 7}})
    with pytest.raises(ConfigError, match=r"bad.yaml.train: unknown key 'epoch'"):
        build_config("quick", GENOTYPE, file=tmp_path / "bad.yaml")
    write_yaml(tmp_path / "model.yaml", {"model": {"baseline": "dnanet"}})
    with pytest.raises(ConfigError, match="'model' is chosen on the command line"):
        build_config("quick", GENOTYPE, file=tmp_path / "model.yaml")
    with pytest.raises(ConfigError, match="command line.train: epochs, batch_size and val_every must be at least 1"):
        build_config("quick", GENOTYPE, changes={"train.epochs": 0})
    with pytest.raises(ConfigError, match="give exactly one of model.genotype"):
        build_config("quick", {"genotype": "x", "space": "tiny", "baseline": "dnanet"})
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        build_config("fast", GENOTYPE)


def test_training_loss_sums_named_losses():
    logits, target = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.8).float()
    total = build_train_loss("softiou+bce")(logits, target)
    assert float(total) == pytest.approx(float(build_train_loss("softiou")(logits, target)
                                               + build_train_loss("bce")(logits, target)))
    with pytest.raises(ConfigError, match="unknown loss 'focal'"):
        build_train_loss("softiou+focal")
    with pytest.raises(ConfigError, match="malformed loss"):
        build_train_loss("softiou+")


def test_search_run_sources(tmp_path):
    space = load_space("tiny")
    run = tmp_path / "search"
    named_genotypes(space)["chain_res3"].save(run / "genotype.json")
    write_yaml(run / "config.yaml", {"space": space.to_dict(), "data": {"dataset": "x", "crop_size": 9, "lr": 1}})
    found = read_search_run(run)
    assert found.space == str(run / "space.yaml") and found.data == {"dataset": "x"}
    spec = resolve_spec(str(found.genotype_file), found.space)
    assert spec["genotype"]["name"] == "chain_res3" and spec["space"]["name"] == "tiny"
    (run / "config.yaml").unlink()  # no config: the genotype names its space
    assert read_search_run(run).space == "tiny"
    with pytest.raises(HnanasError, match="no genotype.json"):
        read_search_run(tmp_path)
    write_json(tmp_path / "spec.json", {**spec, "input_norm": [1.0, 2.0]})
    assert baseline_spec(str(tmp_path / "spec.json")) == spec  # a spec file; its normalisation is recomputed
    write_json(tmp_path / "nospec.json", {"widths": [1]})
    with pytest.raises(ConfigError, match="not a model spec"):
        baseline_spec(str(tmp_path / "nospec.json"))


def tiny_model(op: str = "repconv"):
    space = load_space("tiny")
    genotype = make_genotype(space, {n.id: n.candidates for n in space.nodes}, op, name=f"dense_{op}")
    spec = nested_spec(space, genotype)
    torch.manual_seed(0)
    model = build_model(spec)
    for m in model.modules():  # non-trivial BN statistics, so a broken fusion shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return spec, model.eval()


def test_reparameterisation_is_checked_on_the_batch(monkeypatch):
    spec, model = tiny_model()
    x = torch.randn(2, 1, 32, 32)
    deployed = reparameterize_checked(model, x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())

    def broken(m):
        out = copy.deepcopy(m)
        with torch.no_grad():
            next(out.parameters()).mul_(1.5)
        return out

    monkeypatch.setattr(deploy, "reparameterize_model", broken)
    with pytest.raises(HnanasError, match="re-parameterisation changed the network's output"):
        reparameterize_checked(model, x)


def synthetic_table(space, threads: int) -> LatencyTable:
    rows = [{**e.row(), "median_ms": 0.01 * (i % 7 + 1), "p10_ms": 0.01, "p90_ms": 0.1, "n": 5}
            for i, e in enumerate(space_entries(space))]
    meta = {"format": FORMAT, "space": space.name, "space_hash": space.hash, "device": "cpu", "threads": threads,
            "fixed_overhead_ms": 0.05}
    return LatencyTable(pd.DataFrame(rows), meta)


def test_latency_uses_the_tables_thread_count_and_prediction(tmp_path, monkeypatch):
    spec, model = tiny_model()
    space = load_space("tiny")
    monkeypatch.setattr(latency_table, "TABLES_DIR", tmp_path)
    assert find_table(spec, "cpu", None) == (None, 1)
    table = synthetic_table(space, 2)
    table.save(tmp_path / "tiny_cpu_t2.csv")
    assert find_table(spec, "cpu", None) == (tmp_path / "tiny_cpu_t2.csv", 2)
    net = deploy_network(reparameterize_checked(model, torch.randn(1, 1, 32, 32)), [100.0, 20.0])
    onnx = export_checked(net, torch.rand(1, 1, 32, 32) * 255, onnx_metadata(spec, [100.0, 20.0]))
    result = measure_latency(onnx, spec, devices=["cpu"], sessions=2)["cpu"]
    assert result["threads"] == 2 and len(result["sessions_ms"]) == 2 and result["measured_ms"] > 0
    expected = table.predict(genotype_from_dict(spec["genotype"], space), space).total_ms
    assert result["predicted_ms"] == pytest.approx(expected, rel=1e-4) and result["table"].endswith("t2.csv")
    forced = measure_latency(onnx, spec, devices=["cpu"], threads=1, sessions=1)["cpu"]
    assert forced["threads"] == 1 and forced["predicted_ms"] is None and "no latency table" in forced["note"]
    json.dumps(result)  # plain JSON


class ToyDeepSupervision(torch.nn.Module):
    """A registered baseline kind with deep supervision: [aux, main] logits in train mode, main in eval mode."""

    def __init__(self, spec: dict, deploy: bool):
        super().__init__()
        from hnanas.ops import ConvBN

        self.body = torch.nn.Sequential(ConvBN(1, spec["width"], 3, deploy=deploy), torch.nn.ReLU())
        self.aux, self.main = torch.nn.Conv2d(spec["width"], 1, 1), torch.nn.Conv2d(spec["width"], 1, 1)

    def forward(self, x):
        features = self.body(x)
        return [self.aux(features), self.main(features)] if self.training else self.main(features)


def test_retrain_of_a_baseline_with_deep_supervision(workspace, tmp_path):
    from hnanas.nas.model_kinds import _BUILDERS, register_model
    from hnanas.pipeline.retrain import start_retrain

    if "toy_ds" not in _BUILDERS:
        register_model("toy_ds", ToyDeepSupervision, named={"toy_ds": {"width": 4}})
    cfg = build_config("quick", {"baseline": "toy_ds"}, changes={
        "data.dataset": str(workspace / "tinydata"), "data.crop_size": 32, "train.epochs": 2,
        "train.batch_size": 8, "train.figure_images": 0, "latency.sessions": 1, "latency.size": [64, 64]})
    result = start_retrain(cfg, tmp_path / "toy")
    assert result.metrics["model"] == "toy_ds"
    assert result.metrics["training"]["steps"] == 2  # 15 training images in batches of 8, the last one dropped
    assert result.latency["cpu"]["predicted_ms"] is None and "baseline network" in result.latency["cpu"]["note"]
    assert json.loads((tmp_path / "toy" / "model.json").read_text()) == {"kind": "toy_ds", "width": 4}
    assert not (tmp_path / "toy" / "predictions.png").exists() and "toy_ds" in result.summary


def test_float32_rounding_alone_does_not_fail_the_check(monkeypatch, caplog):
    spec, model = tiny_model()
    x = torch.randn(2, 1, 32, 32) + 50.0  # a bright flat background: float32 differs, float64 agrees
    monkeypatch.setattr(deploy, "EQUIVALENCE_TOL", 0.0)  # as if float32 had missed the tolerance
    with caplog.at_level("WARNING", logger="hnanas.pipeline.deploy"):
        deployed = reparameterize_checked(model, x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())
    assert "float32 rounding, not a broken fusion" in caplog.text
    with torch.no_grad():  # the deploy form returned is float32, like the model
        assert deployed(x).dtype == torch.float32


def test_best_checkpoint_rule_breaks_iou_ties_by_validation_loss():
    from hnanas.pipeline.retrain import improves

    start = {"epoch": None, "val_iou": None}
    assert improves({"iou": 0.0, "loss": 0.9}, start)  # the first validation always counts
    flat = {"epoch": 1, "val_iou": 0.0, "val_loss": 0.9}
    assert improves({"iou": 0.0, "loss": 0.6}, flat)  # IoU 0 again, better fitted: a later epoch is kept
    assert not improves({"iou": 0.0, "loss": 0.95}, flat)
    assert not improves({"iou": 0.0, "loss": 0.9}, flat)  # an exact tie keeps the earlier one
    assert improves({"iou": 0.1, "loss": 2.0}, flat)  # IoU decides before loss
    assert not improves({"iou": 0.05, "loss": 0.1}, {"epoch": 3, "val_iou": 0.1, "val_loss": 0.5})
    old = {"epoch": 1, "val_iou": 0.0}  # a best of an older run's checkpoint (no val_loss) loses ties
    assert improves({"iou": 0.0, "loss": 5.0}, old)
