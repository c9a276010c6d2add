"""Baseline networks (DNANet, the RepISD-Net-style ECB U-Net) through the model-spec path: shapes, gradients,
train vs deploy with random BN statistics, ONNX export, size against the papers, specs and normalisation."""

from __future__ import annotations

import collections
import json

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from hnanas.nas.baselines.dnanet import DNANet, DNANetConfig, node_in_channels
from hnanas.nas.baselines.pyramid_pooling import adaptive_avg_pool
from hnanas.errors import ConfigError, HnanasError
from hnanas.nas.models import build_model, main_output, named_models
from hnanas.ops import count_macs, count_params, has_batchnorm, reparameterize_model
from hnanas.ops.equivalence import randomize_parameters_, relative_error
from hnanas.runtime import export_onnx, run_onnx

# Small variants: the narrowest published DNANet widths and a narrow RepISD; sizes do not matter for these checks.
SMALL = {
    "dnanet": {"kind": "dnanet", "widths": [4, 8, 16, 32, 64], "blocks": [2, 2, 2, 2], "deep_supervision": True},
    "repisd": {"kind": "repisd", "widths": [8, 16], "bins": [1, 2, 3, 6], "dropout": 0.1},
}
SIZE = 32


def _x(n=2, size=SIZE, seed=1, scale=1.0):
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * scale


def _randomized(spec, seed=0):
    model = build_model(spec)
    randomize_parameters_(model, torch.Generator().manual_seed(seed))
    return model.eval()


def test_named_specs_are_registered_with_all_their_options():
    named = named_models()
    assert named["dnanet"] == {"kind": "dnanet", "widths": [16, 32, 64, 128, 256], "blocks": [2, 2, 2, 2],
                               "deep_supervision": True}
    assert named["dnanet_8_128"]["widths"] == [8, 16, 32, 64, 128]
    assert named["repisd"] == {"kind": "repisd", "widths": [32, 64], "bins": [1, 2, 3, 6], "dropout": 0.1}


def test_dnanet_returns_deep_supervision_list_in_training_and_final_logits_in_eval():
    model = build_model(SMALL["dnanet"]).train()
    out = model(_x())
    assert isinstance(out, list) and len(out) == 4
    assert all(o.shape == (2, 1, SIZE, SIZE) for o in out)
    model.eval()
    with torch.no_grad():
        final = model(_x())
    assert isinstance(final, torch.Tensor) and final.shape == (2, 1, SIZE, SIZE)
    torch.testing.assert_close(main_output(final), final)
    plain = build_model({**SMALL["dnanet"], "deep_supervision": False}).train()
    assert isinstance(plain(_x()), torch.Tensor) and len(plain.heads) == 1


def test_repisd_returns_one_logit_map_in_both_modes():
    model = build_model(SMALL["repisd"])
    assert model.train()(_x()).shape == (2, 1, SIZE, SIZE)
    with torch.no_grad():
        assert model.eval()(_x(size=24)).shape == (2, 1, 24, 24)  # any multiple of 4


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_backward_reaches_every_parameter_with_finite_gradients(kind):
    model = build_model(SMALL[kind]).train()
    x = _x().requires_grad_(True)
    out = model(x)
    loss = sum(o.square().mean() for o in out) if isinstance(out, list) else out.square().mean()
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_train_and_deploy_forms_agree_with_random_bn_statistics(kind):
    train = _randomized(SMALL[kind])
    assert has_batchnorm(train)
    deployed = reparameterize_model(train)
    assert not has_batchnorm(deployed) and has_batchnorm(train)  # the original is left untouched
    x = _x(scale=2.0)
    with torch.no_grad():
        _, rel = relative_error(deployed(x), train(x))
    assert rel < 1e-4
    # built directly in deploy form: the same modules and tensors, so a fused state dict loads strictly
    direct = build_model(SMALL[kind], deploy=True).eval()
    assert not has_batchnorm(direct)
    shapes = {k: v.shape for k, v in direct.state_dict().items()}
    assert shapes == {k: v.shape for k, v in deployed.state_dict().items()}
    direct.load_state_dict(deployed.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(direct(x), deployed(x), rtol=0, atol=0)


def test_repisd_deploy_form_is_plain_convs_only():
    deployed = build_model(SMALL["repisd"], deploy=True)
    convs = [m for m in deployed.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    # 2 stem + 8 fused ECB 3x3 + 4 PPM 1x1 + head 3x3 + classifier 1x1
    assert sorted(c.kernel_size[0] for c in convs) == [1] * 5 + [3] * 11


@pytest.mark.parametrize("kind, size", [("dnanet", 32), ("repisd", 256)])
def test_deploy_form_exports_with_dynamo_and_matches_torch_in_onnx_runtime(kind, size):
    """RepISD at 256² with its published widths: its 3- and 6-bin pools do not divide 256."""
    spec = named_models()["repisd"] if kind == "repisd" else SMALL[kind]
    deployed = reparameterize_model(_randomized(spec))
    x = _x(n=1, size=size, seed=3)
    model = export_onnx(deployed, x, dynamo=True)
    got = run_onnx(model, x.numpy(), threads=1)
    with torch.no_grad():
        expected = deployed(x).numpy()
    assert got.shape == (1, 1, size, size)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
    ops = collections.Counter(n.op_type for n in onnx.load_from_string(model).graph.node)
    assert "BatchNormalization" not in ops
    if kind == "repisd":  # adaptive pooling as two MatMuls per bin count, not thousands of Gathers
        assert set(ops) == {"Conv", "Relu", "MatMul", "Resize", "Concat", "MaxPool"}, ops
        assert ops["MatMul"] == 8 and ops["Conv"] == 16


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_dynamic_export_keeps_height_and_width_symbolic(kind):
    """A size turned into a Python int (int(x.shape[2])) made the exporter fix the input size silently."""
    deployed = reparameterize_model(_randomized(SMALL[kind]))
    model = export_onnx(deployed, torch.rand(1, 1, 32, 64), dynamo=True, dynamic_hw=True)
    x = torch.rand(1, 1, 64, 96, generator=torch.Generator().manual_seed(4))
    got = run_onnx(model, x.numpy(), threads=1)
    with torch.no_grad():
        expected = deployed(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


@pytest.mark.parametrize("length, bins", [(256, 6), (256, 3), (7, 3), (10, 6), (5, 6), (12, 1), (9, 2)])
def test_adaptive_pool_matches_torch_including_uneven_windows(length, bins):
    x = torch.randn(2, 3, length, length + 1, dtype=torch.float64)
    torch.testing.assert_close(adaptive_avg_pool(x, bins), F.adaptive_avg_pool2d(x, bins), rtol=0, atol=1e-12)


def test_dnanet_default_size_matches_the_paper():
    model = build_model(named_models()["dnanet"])
    params, macs = count_params(model), count_macs(model, (1, 256, 256))
    assert abs(params / 4.70e6 - 1) < 0.02, params
    assert abs(macs / 14.0e9 - 1) < 0.03, macs
    assert count_macs(build_model(named_models()["dnanet"], deploy=True), (1, 256, 256)) == macs


def test_repisd_size_matches_the_paper():
    deployed = build_model(named_models()["repisd"], deploy=True)
    assert abs(count_params(deployed) / 0.28e6 - 1) < 0.02
    # the paper's 25.76 "GFLOPs" at 512² are MACs (see hnanas.nas.baselines.repisd)
    assert abs(count_macs(deployed, (1, 512, 512)) / 25.76e9 - 1) < 0.02


def test_dnanet_node_inputs_follow_the_published_grid():
    w = DNANetConfig().widths
    assert node_in_channels(w, 0, 0) == 1 and node_in_channels(w, 2, 0) == 32
    assert node_in_channels(w, 0, 1) == 16 + 32  # [X00, up X10]
    assert node_in_channels(w, 1, 3) == 32 * 3 + 64 + 16  # [X10..X12, up X22, down X03]
    assert node_in_channels(w, 3, 1) == 128 + 256 + 64
    assert node_in_channels(w, 0, 4) == 16 * 4 + 32
    net = DNANet(DNANetConfig(widths=(4, 8, 16, 32, 64), blocks=(1, 2, 3, 4)))
    assert [len(net.nodes[f"x{i}_0"]) for i in range(5)] == [1, 1, 2, 3, 4]
    assert len(net.nodes) == 15 and len(net.fuse) == 1
    assert net.nodes["x0_0"][0].channel_attention.mlp[0].out_channels == 1  # max(1, 4 // 16)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_spec_round_trips_through_json(kind):
    spec = json.loads(json.dumps(SMALL[kind]))
    torch.manual_seed(0)
    a = build_model(spec).eval()
    torch.manual_seed(0)
    b = build_model(SMALL[kind]).eval()
    assert a.config.to_spec() == SMALL[kind]
    with torch.no_grad():
        torch.testing.assert_close(a(_x()), b(_x()), rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_input_normalisation_comes_from_the_spec(kind):
    torch.manual_seed(0)
    plain = build_model(SMALL[kind]).eval()
    torch.manual_seed(0)
    normed = build_model({**SMALL[kind], "input_norm": [100.0, 20.0]}).eval()
    x = torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(5)) * 255
    with torch.no_grad():
        torch.testing.assert_close(normed(x), plain((x - 100.0) / 20.0))
        assert not torch.allclose(normed(x), plain(x))


@pytest.mark.parametrize("spec, match", [
    ({"kind": "dnanet", "width": [4, 8, 16, 32, 64]}, "unknown key.*'width'.*known keys: kind, input_norm, widths"),
    ({"kind": "dnanet", "widths": [4, 8, 16, 32]}, "list of 5 positive integers"),
    ({"kind": "dnanet", "blocks": [2, 2, True, 2]}, "'blocks'"),
    ({"kind": "dnanet", "deep_supervision": "false"}, "true or false"),
    ({"kind": "repisd", "bins": []}, "'bins'"),
    ({"kind": "repisd", "dropout": 1.0}, r"\[0, 1\)"),
])
def test_malformed_specs_are_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        build_model(spec)


@pytest.mark.parametrize("kind, size, multiple", [("dnanet", 40, 16), ("repisd", 30, 4)])
def test_input_size_that_does_not_divide_is_a_clear_error(kind, size, multiple):
    model = build_model(SMALL[kind]).eval()
    with pytest.raises(HnanasError, match=f"{kind}: input height and width must be multiples of {multiple}"):
        model(_x(n=1, size=size))
