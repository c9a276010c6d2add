"""The re-param contract and the kernel arithmetic behind it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hnanas.ops import build_op, has_batchnorm, list_ops, reparameterize_model
from hnanas.ops.blocks import ConvBN
from hnanas.ops.equivalence import check_equivalence, randomize_parameters_
from hnanas.ops.fusion import central_difference_kernel, fuse_bn, identity_kernel, pad_kernel
from hnanas.ops.repblock import Conv1x1Conv, pad_with_bias



GEN = torch.Generator


def _x(c, h=9, w=10, seed=0):
    return torch.randn(1, c, h, w, generator=GEN().manual_seed(seed), dtype=torch.float64)


def test_fuse_bn_matches_conv_then_eval_bn():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True).double()
    bn = nn.BatchNorm2d(6).double()
    randomize_parameters_(nn.Sequential(conv, bn), GEN().manual_seed(0))
    bn.eval()
    k, b = fuse_bn(conv.weight, conv.bias, bn)
    x = _x(4)
    torch.testing.assert_close(F.conv2d(x, k, b, padding=1), bn(conv(x)), rtol=0, atol=1e-12)


def test_central_difference_kernel_is_conv_minus_centre_times_kernel_sum():
    w = torch.randn(5, 3, 3, 3, generator=GEN().manual_seed(1), dtype=torch.float64)
    x = _x(3)
    for stride in (1, 2):
        expected = F.conv2d(x, w, stride=stride, padding=1) - F.conv2d(x, w.sum((2, 3), keepdim=True), stride=stride)
        got = F.conv2d(x, central_difference_kernel(w), stride=stride, padding=1)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_identity_and_padded_kernels_copy_the_input():
    x = _x(6)
    assert torch.equal(F.conv2d(x, identity_kernel(6, size=3, dtype=x.dtype), padding=1), x)
    assert torch.equal(F.conv2d(x, identity_kernel(6, groups=6, size=3, dtype=x.dtype), padding=1, groups=6), x)
    assert torch.equal(F.conv2d(x, pad_kernel(identity_kernel(6, dtype=x.dtype), 5), padding=2), x)
    with pytest.raises(ValueError):
        pad_kernel(torch.zeros(1, 1, 3, 3), 4)


def test_pad_with_bias_pads_with_the_bias_not_zero():
    y = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    b = torch.tensor([1.5, -2.0, 0.25], dtype=torch.float64)
    p = pad_with_bias(y, b, 1)
    assert p.shape == (1, 3, 6, 7) and torch.equal(p[:, :, 1:-1, 1:-1], y)
    border = torch.ones(6, 7, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    for c in range(3):
        assert (p[0, c][border] == b[c]).all()


def test_ecbsr_sequence_with_zero_padding_would_not_merge():
    """Why the bias padding matters: with zero padding the 1x1 -> 3x3 sequence differs from the merged conv at the
    border, so the equivalence check is sensitive to it."""
    seq = Conv1x1Conv(4, 4, 8).double()
    randomize_parameters_(seq, GEN().manual_seed(2))
    x = _x(4)
    k, b = seq.get_equivalent_kernel_bias()
    merged = F.conv2d(x, k, b, padding=1)
    torch.testing.assert_close(seq(x), merged, rtol=0, atol=1e-12)
    zero_padded = seq.conv(F.pad(seq.expand(x), [1, 1, 1, 1]))
    assert (zero_padded - merged).abs().max() > 1e-3


@pytest.mark.parametrize("name", list_ops(reparameterizable=True))
def test_equivalent_kernel_is_differentiable(name):
    op = randomize_parameters_(build_op(name, 8, 8, 1), GEN().manual_seed(5))
    pairs = op.get_equivalent_kernel_bias()
    pairs = pairs if isinstance(pairs[0], tuple) else (pairs,)  # repdw fuses into two convs
    gen = GEN().manual_seed(6)  # a random linear read-out of the fused tensors: every path gets a gradient
    total = sum((k * torch.randn(k.shape, generator=gen)).sum() + (b * torch.randn(b.shape, generator=gen)).sum()
                for k, b in pairs)
    total.backward()
    params = dict(op.named_parameters())
    assert params
    for pname, p in params.items():
        assert p.grad is not None, pname
        # Sobel and Laplacian masks sum to 0, so the bias that pads their 1x1 output cancels in the fused bias
        if pname.endswith("expand.bias") and any(m in pname for m in ("sobel", "laplacian")):
            assert p.grad.abs().max() < 1e-6, pname
        else:
            assert p.grad.abs().sum() > 0, pname  # (not every element: CDC with θ=1 ignores its centre tap)


@pytest.mark.parametrize("name", list_ops(family="rep3x3"))
def test_rep3x3_equivalent_kernel_reproduces_the_train_form(name):
    op = build_op(name, 6, 6, 2)
    randomize_parameters_(op, GEN().manual_seed(3))
    op = op.double().eval()
    k, b = op.get_equivalent_kernel_bias()
    assert k.shape == (6, 6, 3, 3)
    x = _x(6)
    torch.testing.assert_close(F.relu(F.conv2d(x, k, b, stride=2, padding=1)), op(x), rtol=0, atol=1e-10)
    op.reparameterize()
    k2, b2 = op.get_equivalent_kernel_bias()  # deploy form returns the fused conv's own tensors
    torch.testing.assert_close((k2, b2), (k, b), rtol=0, atol=1e-12)


def test_reparameterize_model_converts_nested_networks():
    net = nn.Sequential(build_op("ecb", 4, 8, 2), nn.Sequential(build_op("res3", 8, 8, 1), build_op("repdw", 8, 8, 1)),
                        ConvBN(8, 2, 1), nn.Upsample(scale_factor=2.0))
    randomize_parameters_(net, GEN().manual_seed(4))
    net = net.double().eval()
    assert has_batchnorm(net)
    deployed = reparameterize_model(net)
    assert not has_batchnorm(deployed) and has_batchnorm(net)
    x = _x(4, 16, 16)
    torch.testing.assert_close(deployed(x), net(x), rtol=1e-10, atol=1e-10)


def test_fusion_keeps_the_ecb_1x1_bias():
    """RepISD's converter drops the 1x1 conv's bias; with random biases that would fail the check."""
    op = build_op("ecb", 4, 4, 1)
    assert op.branches["conv1x1"].conv.bias is not None
    assert check_equivalence("ecb", 4, 4, 1, (8, 8)).passed


@pytest.mark.parametrize("c_in, c_out, g, expected", [(16, 16, 8, (8, 8)), (12, 8, 8, (4, 8)), (3, 8, 4, (1, 4)),
                                                      (248, 8, 8, (8, 8))])
def test_group_count_falls_back_to_a_divisor(c_in, c_out, g, expected):
    op = build_op(f"group{g}", c_in, c_out, 1)
    assert (op.main[0].conv.groups, op.main[2].conv.groups) == expected


def test_mbconv_hidden_width_follows_c_out():
    op = build_op("mb3e4", 248, 8, 1)
    assert op.main[0].conv.out_channels == 32 and op.shortcut is None
    assert build_op("mb3e4", 8, 8, 1).shortcut is not None
