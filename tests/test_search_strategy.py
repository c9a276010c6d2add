"""Search strategies are plug-ins: one registry, the same run folder whatever the strategy, clear errors."""

from __future__ import annotations

import json

import pytest

from _helpers import synthetic_table
from hnanas.data.synthetic import SynthParams, write_synthetic
from hnanas.errors import ConfigError
from hnanas.fileio import read_yaml
from hnanas.genotype import named_genotypes
from hnanas.search.config import resolve_config
from hnanas.search.run import run_search
from hnanas.search.strategy import Strategy, _STRATEGIES, get_strategy, register_strategy, strategy_names
from hnanas.space import load_space
from hnanas.train.sources import read_search_run


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("strategy")
    write_synthetic(root / "syn", SynthParams(n=24, size=64, seed=0))
    table = synthetic_table(load_space("tiny")).save(root / "tiny_cpu_t1.csv")
    return {"data": root / "syn", "table": table}


class Chain(Strategy):
    """A strategy that searches nothing: the space's chain topology with res3 (the interface at its smallest)."""

    name = "test-chain"
    summary = "returns chain_res3"

    def run(self, resume):
        self.ran = True
        return named_genotypes(self.ctx.space)["chain_res3"]

    def info(self):
        return {"chain": True}


def test_a_registered_strategy_writes_the_same_run_folder(assets, tmp_path):
    register_strategy(Chain)
    try:
        assert "two-stage" in strategy_names() and "test-chain" in strategy_names()
        cfg = resolve_config("quick", {"space": "tiny", "table": str(assets["table"]), "strategy": "test-chain",
                                       "data.dataset": str(assets["data"])})
        summary = run_search(cfg, tmp_path / "run")
    finally:
        _STRATEGIES.pop("test-chain")
    genotype = json.loads((tmp_path / "run" / "genotype.json").read_text())
    assert genotype["info"]["strategy"] == "test-chain" and genotype["info"]["chain"] is True
    assert genotype["info"]["predicted_latency_ms"] == pytest.approx(summary["predicted_latency_ms"])
    assert read_yaml(tmp_path / "run" / "config.yaml")["strategy"] == "test-chain"
    assert read_search_run(tmp_path / "run").space == "tiny"  # retrain reads it like any search run


def test_unknown_strategy_fails_before_anything_is_written(assets, tmp_path):
    cfg = resolve_config("quick", {"space": "tiny", "table": str(assets["table"]), "strategy": "nope",
                                   "data.dataset": str(assets["data"])})
    with pytest.raises(ConfigError, match="unknown search strategy 'nope'; choose one of: two-stage"):
        run_search(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="registered twice"):
        register_strategy(get_strategy("two-stage"))
