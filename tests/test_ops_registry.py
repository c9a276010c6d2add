"""Registry-driven op tests: every registered op gets each check automatically (tiny shapes)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from hnanas.errors import ConfigError
from hnanas.ops import build_op, has_batchnorm, list_ops, op_info, register_op, reparameterize_model, unregister_op
from hnanas.ops.equivalence import randomize_parameters_, relative_error
from hnanas.runtime import export_onnx, run_onnx



OPS = list_ops()
# (c_in, c_out, stride): equal and unequal channel counts (a node's first op reads a wider concat), both strides
CONFIGS = [(8, 8, 1), (8, 8, 2), (12, 8, 1), (8, 16, 2)]


def _cases():
    for name in OPS:
        for c_in, c_out, stride in CONFIGS:
            if op_info(name).same_shape_only and (c_in != c_out or stride != 1):
                continue
            yield pytest.param(name, c_in, c_out, stride, id=f"{name}-{c_in}to{c_out}-s{stride}")


CASES = list(_cases())


def _randomized(name, c_in, c_out, stride, seed=0, dtype=torch.float64):
    op = build_op(name, c_in, c_out, stride)
    randomize_parameters_(op, torch.Generator().manual_seed(seed))
    return op.to(dtype).eval()


def _input(c, dtype=torch.float64, h=16, w=15, seed=1):
    return torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_registry_has_the_specified_ops():
    hna = ["res3", "res5", "res7", "group2", "group4", "group8", "spa3", "spa5", "spa7", "mb3e2", "mb3e4", "mb5e6"]
    rep = ["ecb", "ecbsr", "repconv", "cdc", "repdw"]
    assert OPS[:12] == hna
    assert set(OPS) == set(hna + rep + ["dil3", "identity"])
    assert list_ops(reparameterizable=True) == rep
    assert [n for n in OPS if op_info(n).same_shape_only] == ["identity"]
    assert list_ops(family="rep3x3") == ["ecb", "ecbsr", "repconv", "cdc"]


@pytest.mark.parametrize("name, c_in, c_out, stride", CASES)
def test_output_shape(name, c_in, c_out, stride):
    x = _input(c_in, torch.float32)
    for deploy in (False, True):
        y = build_op(name, c_in, c_out, stride, deploy=deploy)(x)
        assert y.shape == (2, c_out, -(-16 // stride), -(-15 // stride)), (deploy, y.shape)


@pytest.mark.parametrize("name, c_in, c_out, stride", CASES)
def test_backward_gives_finite_gradients_to_every_parameter(name, c_in, c_out, stride):
    op = build_op(name, c_in, c_out, stride).train()
    x = _input(c_in, torch.float32).requires_grad_(True)
    op(x).square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in op.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name, c_in, c_out, stride", CASES)
def test_train_and_deploy_forms_agree_with_random_bn_statistics(name, c_in, c_out, stride):
    train = _randomized(name, c_in, c_out, stride)
    deploy = reparameterize_model(train)
    x = _input(c_in)
    with torch.no_grad():
        reference = train(x)
        _, rel64 = relative_error(deploy(x), reference)
        train32 = copy.deepcopy(train).float()
        _, rel32 = relative_error(reparameterize_model(train32)(x.float()), train32(x.float()))
    assert reference.abs().max() > 0.1  # the check compares something
    assert rel64 <= 1e-10 and rel32 <= 1e-5, (rel64, rel32)


@pytest.mark.parametrize("name, c_in, c_out, stride", CASES)
def test_deployed_op_has_no_batchnorm_and_the_structure_of_a_deploy_build(name, c_in, c_out, stride):
    deployed = reparameterize_model(build_op(name, c_in, c_out, stride))
    built = build_op(name, c_in, c_out, stride, deploy=True)
    assert not has_batchnorm(deployed) and not has_batchnorm(built)
    assert repr(deployed) == repr(built)
    assert [(k, v.shape) for k, v in deployed.state_dict().items()] == \
        [(k, v.shape) for k, v in built.state_dict().items()]
    built.load_state_dict(deployed.state_dict())  # a deploy checkpoint loads into a deploy build


@pytest.mark.parametrize("name", OPS)
def test_reparameterize_twice_is_a_no_op(name):
    op = _randomized(name, 8, 8, 1)
    op.reparameterize()
    state = {k: v.clone() for k, v in op.state_dict().items()}
    structure = repr(op)
    op.reparameterize()
    assert repr(op) == structure
    assert all(torch.equal(v, state[k]) for k, v in op.state_dict().items())


@pytest.mark.parametrize("name", OPS)
def test_reparameterize_model_copies_unless_inplace(name):
    op = build_op(name, 8, 8, 1)
    before = repr(op)
    deployed = reparameterize_model(op)
    assert repr(op) == before and deployed is not op
    same = reparameterize_model(op, inplace=True)
    assert same is op and repr(op) == repr(deployed)


@pytest.mark.parametrize("name, c_in, c_out, stride", [c for c in CASES if c.values[1:] in ((8, 8, 1), (12, 8, 1))])
def test_deploy_form_exports_to_onnx_and_matches_torch(name, c_in, c_out, stride):
    import onnx

    deploy = reparameterize_model(_randomized(name, c_in, c_out, stride, dtype=torch.float32))
    x = _input(c_in, torch.float32)[:1]
    data = export_onnx(deploy, x, dynamo=False)
    types = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert "BatchNormalization" not in types
    with torch.no_grad():
        expected = deploy(x).numpy()
    got = run_onnx(data, x.numpy(), threads=1)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


@pytest.mark.parametrize("name", ["ecb", "ecbsr"])
def test_rep3x3_deploy_graph_is_one_conv_and_relu_with_dynamo_exporter(name):
    import onnx

    deploy = reparameterize_model(_randomized(name, 8, 8, 1, dtype=torch.float32))
    x = _input(8, torch.float32)[:1]
    data = export_onnx(deploy, x, dynamo=True)
    assert [n.op_type for n in onnx.load_from_string(data).graph.node] == ["Conv", "Relu"]
    with torch.no_grad():
        np.testing.assert_allclose(run_onnx(data, x.numpy(), threads=1), deploy(x).numpy(), rtol=1e-4, atol=1e-5)


def test_registry_rejects_duplicates_and_unknown_names():
    with pytest.raises(ConfigError, match="'res3' is already registered"):
        register_op("res3", family="residual", description="dup")(lambda c_in, c_out, stride, *, deploy=False: None)
    assert op_info("res3").description.startswith("ResConv 3x3")  # the original stays
    with pytest.raises(ConfigError, match=r"unknown op 'res4'; known ops: res3, res5"):
        build_op("res4", 8, 8)
    with pytest.raises(ConfigError, match="unknown family"):
        register_op("x_test", family="mystery", description="")


def test_register_op_adds_a_buildable_op():
    @register_op("x_test_conv", family="dilated", description="test op")
    def build(c_in, c_out, stride, *, deploy=False):
        return nn.Conv2d(c_in, c_out, 3, stride, 1)

    try:
        assert "x_test_conv" in list_ops() and build_op("x_test_conv", 4, 6, 2)(torch.zeros(1, 4, 8, 8)).shape[1] == 6
    finally:
        unregister_op("x_test_conv")
    assert "x_test_conv" not in list_ops()


@pytest.mark.parametrize("args, words", [
    (("identity", 8, 16, 1), "only exists for c_in == c_out and stride 1"),
    (("identity", 8, 8, 2), "only exists for c_in == c_out and stride 1"),
    (("res3", 8, 8, 3), "stride must be 1 or 2"),
    (("res3", 0, 8, 1), "c_in must be a positive integer"),
    (("ecb", 8, 8.0, 1), "c_out must be a positive integer"),
])
def test_build_op_rejects_bad_arguments(args, words):
    with pytest.raises(ConfigError, match=words):
        build_op(*args)
