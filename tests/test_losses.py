"""Losses: exact SoftIoU/Dice values, per-sample averaging, safety on target-free crops, the name registry."""

from __future__ import annotations

import pytest
import torch

from hnanas.errors import ConfigError
from hnanas.losses import build_loss, list_losses


def sample_target() -> torch.Tensor:
    target = torch.zeros(2, 1, 8, 8)
    target[0, 0, 2:4, 2:4] = 1.0
    target[1, 0, 5, 1:6] = 1.0
    return target


def test_known_names_and_default():
    assert list_losses()[0] == "softiou" and set(list_losses()) == {"softiou", "bce", "dice"}
    assert build_loss() is build_loss("softiou") is build_loss(" SoftIoU ")


def test_unknown_name_is_config_error_listing_known_ones():
    with pytest.raises(ConfigError, match="unknown loss 'focal'.*softiou, bce, dice"):
        build_loss("focal")


@pytest.mark.parametrize("name", list_losses())
def test_perfect_logits_give_near_zero_loss_and_finite_gradients(name):
    target = sample_target()
    logits = ((target * 2 - 1) * 30).requires_grad_()
    loss = build_loss(name)(logits, target)
    assert loss.item() < 1e-6
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", list_losses())
@pytest.mark.parametrize("scale", [0.0, 1.0, 100.0])
def test_all_zero_target_is_finite_and_pushes_logits_down(name, scale):
    target = torch.zeros(3, 1, 16, 16)
    logits = (torch.randn(3, 1, 16, 16) * scale).requires_grad_()
    loss = build_loss(name)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    if scale == 0.0:  # sigmoid 0.5 everywhere on an empty target: the loss must say "predict less"
        assert loss.item() > 0.1 and (logits.grad > 0).all()
    empty_prediction = torch.full_like(target, -40.0)
    assert build_loss(name)(empty_prediction, target).item() < 1e-6


def test_softiou_is_dnanet_formula_per_sample_then_averaged():
    target = sample_target()  # sample 0: 4 target px, sample 1: 5 target px
    logits = torch.full_like(target, -50.0)
    logits[0] = (target[0] * 2 - 1) * 50  # sample 0 perfect
    loss = build_loss("softiou")(logits, target)
    # sample 0: 1 - (4+1)/(4+4-4+1) = 0; sample 1 (predicts nothing): 1 - (0+1)/(0+5-0+1) = 5/6
    assert loss.item() == pytest.approx((0.0 + 5 / 6) / 2, abs=1e-6)


def test_softiou_and_dice_values_at_half_probability():
    target = torch.zeros(1, 1, 2, 2)
    target[0, 0, 0, 0] = 1.0
    logits = torch.zeros_like(target)  # sigmoid 0.5 on 4 pixels: sum 2, intersection 0.5
    softiou = build_loss("softiou")(logits, target).item()
    dice = build_loss("dice")(logits, target).item()
    assert softiou == pytest.approx(1 - (0.5 + 1) / (2 + 1 - 0.5 + 1))
    assert dice == pytest.approx(1 - (2 * 0.5 + 1) / (2 + 1 + 1))


def test_bce_matches_definition_and_accepts_bool_targets():
    target = sample_target()
    logits = torch.randn_like(target)
    p = torch.sigmoid(logits)
    expected = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    assert build_loss("bce")(logits, target.bool()).item() == pytest.approx(expected.item(), rel=1e-5)


def test_half_precision_logits_are_computed_in_float32():
    target = sample_target()
    logits = ((target * 2 - 1) * 8).half()
    loss = build_loss("softiou")(logits, target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differs from target shape"):
        build_loss("dice")(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="batch axis"):
        build_loss("softiou")(torch.zeros(4), torch.zeros(4))
