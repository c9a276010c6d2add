"""MAC and parameter counting, cross-checked against torch.utils.flop_counter.FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hnanas.errors import HnanasError
from hnanas.ops import build_op, count_macs, count_params, list_ops, op_info



def _flop_counter_macs(module: nn.Module, shape) -> int:
    module = module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros((1,) + tuple(shape)))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@pytest.mark.parametrize("name", list_ops())
@pytest.mark.parametrize("c_in, c_out, stride", [(8, 8, 1), (12, 8, 2)])
def test_macs_match_flop_counter(name, c_in, c_out, stride):
    if op_info(name).same_shape_only and (c_in != c_out or stride != 1):
        pytest.skip("same_shape_only")
    for deploy in (False, True):
        op = build_op(name, c_in, c_out, stride, deploy=deploy)
        shape = (c_in, 16, 15)
        macs = count_macs(op, shape)
        assert macs == _flop_counter_macs(op, shape), (name, deploy)
        if name != "identity":
            assert macs > 0


def test_macs_of_known_convs_and_batches():
    conv = nn.Conv2d(8, 16, 3, padding=1)
    assert count_macs(conv, (8, 32, 32)) == 32 * 32 * 16 * 8 * 9
    assert count_macs(conv, (4, 8, 32, 32)) == 4 * 32 * 32 * 16 * 8 * 9
    grouped = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4)
    assert count_macs(grouped, (8, 32, 32)) == 16 * 16 * 16 * 2 * 9


class _MixedNet(nn.Module):
    """Linear, matmul and a data-dependent branch (cannot run on the meta device)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        y = self.conv(x)
        if y.sum().item() > -1e9:  # data-dependent Python control flow
            y = y.mean((2, 3))
        z = self.fc(y)
        return z @ torch.ones(5, 7, dtype=z.dtype, device=z.device)


def test_linear_matmul_and_non_meta_modules_are_counted():
    net = _MixedNet()
    expected = 8 * 8 * 4 * 3 * 9 + 5 * 4 + 7 * 5
    assert count_macs(net, (3, 8, 8)) == expected == _flop_counter_macs(net, (3, 8, 8))


def test_counting_leaves_the_module_untouched():
    op = build_op("res3", 8, 8, 1).train()
    before = {k: v.clone() for k, v in op.state_dict().items()}
    count_macs(op, (8, 16, 16))
    assert op.training and all(torch.equal(v, before[k]) for k, v in op.state_dict().items())
    assert next(op.parameters()).device.type == "cpu"


@pytest.mark.parametrize("shape", [(8, 16), (0, 8, 8), (8, 8.0, 8), (1, 2, 3, 4, 5)])
def test_bad_input_shapes_are_rejected(shape):
    with pytest.raises(HnanasError, match="input shape must be"):
        count_macs(nn.Conv2d(8, 8, 1), shape)


def test_count_params():
    conv = nn.Conv2d(8, 16, 3, bias=True)
    assert count_params(conv) == 16 * 8 * 9 + 16
    conv.bias.requires_grad_(False)
    assert count_params(conv, trainable_only=True) == 16 * 8 * 9
    # BN running statistics are buffers, not parameters: a folded ConvBN trades 2c BN params for c conv biases
    train, deploy = build_op("dil3", 8, 8, 1), build_op("dil3", 8, 8, 1, deploy=True)
    assert count_params(train) - count_params(deploy) == 8
