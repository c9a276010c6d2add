"""Search-space files, genotypes and derived networks."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from hnanas.errors import ConfigError
from hnanas.fileio import read_yaml, write_yaml
from hnanas.nas.genotype import (genotype_from_dict, load_genotype, make_genotype, named_genotypes, prune,
                             sample_genotype)
from hnanas.nas.models import build_model, nested_spec
from hnanas.nas.network import derive, node_shapes
from hnanas.nas.space import SPACES_DIR, load_space, space_from_dict
from hnanas.ops import has_batchnorm, reparameterize_model
from hnanas.runtime import export_onnx, run_onnx

HNA_OPS = ["res3", "res5", "res7", "group2", "group4", "group8", "spa3", "spa5", "spa7", "mb3e2", "mb3e4", "mb5e6"]


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


def test_shipped_spaces_match_hna_nas_meta_architecture():
    hna, rep = load_space("hna_nested"), load_space("rep_nested")
    for s in (hna, rep):
        assert len(s.nodes) == 15 and s.widths == (8, 16, 32, 64, 128) and s.deploy_size == (256, 256)
        assert [s.node(f"{i}_0").blocks for i in range(5)] == [1, 2, 2, 2, 2]
        assert all(n.blocks == 1 for n in s.nodes if n.column > 0)
        assert s.output == "0_4" and s.input_channels == 1
        # node (1, 2): every output of column 1, the node above it, and the column-0 feature of its level
        assert set(s.node("1_2").candidates) == {"0_1", "1_1", "2_1", "3_1", "0_2", "1_0"}
        # column 1 takes the whole encoder
        assert set(s.node("0_1").candidates) == {f"{i}_0" for i in range(5)}
    assert list(hna.ops) == HNA_OPS
    assert set(HNA_OPS + ["ecb", "ecbsr", "repconv", "cdc", "repdw"]) <= set(rep.ops)
    assert hna.hash != rep.hash


def test_hash_ignores_description_but_not_structure():
    data = read_yaml(SPACES_DIR / "tiny.yaml")
    base = space_from_dict(copy.deepcopy(data)).hash
    assert space_from_dict({**copy.deepcopy(data), "description": "other words"}).hash == base
    assert space_from_dict({**copy.deepcopy(data), "widths": [8, 16, 32]}).hash != base


@pytest.mark.parametrize("change, words", [
    ({"widht": [8]}, "unknown key 'widht'"),
    ({"ops": ["res3", "nope"]}, "ops: unknown op 'nope'"),
    ({"stage1_op": "nope"}, "stage1_op: unknown op 'nope'"),
    ({"output": "9_9"}, "output"),
    ({"deploy_size": [30, 32]}, "deploy_size"),
    ({"blocks": {"7_7": 2}}, "blocks.7_7"),
    ({"nodes": {"0_0": ["input"], "1_0": ["2_0"], "2_0": ["1_0"], "0_1": ["0_0"]}}, "not an earlier node"),
    ({"nodes": {"0_0": ["input"], "a": ["0_0"]}}, "LEVEL_COLUMN"),
])
def test_space_errors_name_file_and_key(tmp_path, change, words):
    data = read_yaml(SPACES_DIR / "tiny.yaml")
    data.update(change)
    path = tmp_path / "bad.yaml"
    write_yaml(path, data)
    with pytest.raises(ConfigError) as exc:
        load_space(path)
    assert "bad.yaml" in str(exc.value) and words in str(exc.value)


def test_unknown_space_name_lists_shipped_ones():
    with pytest.raises(ConfigError, match="hna_nested"):
        load_space("nope")


def test_prune_drops_nodes_the_output_cannot_reach(tiny):
    inputs = {n.id: n.candidates[:1] for n in tiny.nodes}
    inputs["0_2"] = ("0_1",)
    inputs["0_1"] = ("0_0",)
    kept = prune(tiny, inputs)
    assert list(kept) == ["0_0", "0_1", "0_2"]  # 1_0, 2_0, 1_1 are unreachable
    g = make_genotype(tiny, inputs, "res3")
    assert [n for n, _, _ in g.nodes] == ["0_0", "0_1", "0_2"]
    net = derive(tiny, g)
    assert sorted(net.cells) == ["0_0", "0_1", "0_2"]


def test_genotype_json_round_trip_and_validation(tiny, tmp_path):
    g = sample_genotype(tiny, 3)
    path = g.save(tmp_path / "g.json", info={"predicted_ms": 1.5})
    assert load_genotype(path, tiny) == g
    data = g.to_dict()
    with pytest.raises(ConfigError, match="made for space"):
        genotype_from_dict({**data, "space_hash": "000"}, tiny)
    bad = copy.deepcopy(data)
    bad["nodes"]["0_2"]["inputs"] = ["2_0"]
    with pytest.raises(ConfigError, match="candidates are"):
        genotype_from_dict(bad, tiny)
    with pytest.raises(ConfigError, match="not an hnanas genotype"):
        genotype_from_dict({"nodes": {}}, tiny)


def test_named_and_sampled_genotypes(tiny):
    named = named_genotypes(tiny)
    assert set(named) == {"dense_res3", "dnanet_res3", "chain_res3"}
    dense = named["dense_res3"]
    assert all(set(ins) == set(tiny.node(n).candidates) for n, ins, _ in dense.nodes)
    assert set(dense.ops.values()) == {"res3"}
    assert load_genotype("dense_res3", tiny) == dense
    assert sample_genotype(tiny, 1) == sample_genotype(tiny, 1)
    assert len({sample_genotype(tiny, k) for k in range(10)}) > 5
    assert load_genotype("random:4", tiny) == sample_genotype(tiny, 4)


def test_derived_network_shapes_deploy_equivalence_and_onnx(tiny):
    g = sample_genotype(tiny, 7)
    net = derive(tiny, g).eval()
    for m in net.modules():  # random BN statistics, so a broken fusion cannot hide
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 1, 32, 32)
    y = net(x)
    assert y.shape == (2, 1, 32, 32)
    deployed = reparameterize_model(net)
    assert not has_batchnorm(deployed)
    torch.testing.assert_close(deployed(x), y, rtol=1e-4, atol=1e-4)
    direct = derive(tiny, g, deploy=True)
    assert sorted(k for k in direct.state_dict()) == sorted(k for k in deployed.state_dict())
    onnx_out = run_onnx(export_onnx(deployed, x[:1], dynamo=False), x[:1].numpy())
    np.testing.assert_allclose(onnx_out, y[:1].detach().numpy(), rtol=1e-3, atol=1e-4)


def test_model_spec_rebuilds_the_network_with_its_input_normalisation(tiny):
    g = named_genotypes(tiny)["chain_res3"]
    spec = nested_spec(tiny, g, input_norm=(100.0, 20.0))
    spec = json.loads(json.dumps(spec))  # specs are plain JSON
    torch.manual_seed(0)
    plain = derive(tiny, g).eval()
    torch.manual_seed(0)
    normed = build_model(spec).eval()
    x = torch.rand(1, 1, 32, 32) * 255
    torch.testing.assert_close(normed(x), plain((x - 100.0) / 20.0))
    with pytest.raises(ConfigError, match="unknown kind"):
        build_model({"kind": "nope"})


def test_node_shapes_at_deploy_size(tiny):
    g = named_genotypes(tiny)["dense_res3"]
    shapes = node_shapes(tiny, g)
    assert shapes["0_0"] == (1, 8, 32, 32)
    assert shapes["1_1"] == (8 + 16 + 16 + 8, 16, 16, 16)
    assert shapes["0_2"] == (8 + 16 + 8, 8, 32, 32)
