"""Train paths (fp32, fp32-cl, bf16, auto): the same training in another memory format or precision, chosen once
per run and kept on resume."""

from __future__ import annotations

import copy

import pytest
import torch

from hnanas.losses import build_loss
from hnanas.nas.genotype import named_genotypes
from hnanas.nas.network import derive
from hnanas.nas.space import load_space
from hnanas.train.fastpath import FP32, TrainPath, choose_path, native_bf16, path_named, time_paths
from hnanas.train.loop import train_epoch


def _net():
    torch.manual_seed(0)
    space = load_space("tiny")
    return derive(space, named_genotypes(space)["dense_res3"])


def _batches(n=3):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(4, 1, 32, 32, generator=g), (torch.rand(4, 1, 32, 32, generator=g) > 0.9).float())
            for _ in range(n)]


def _train(path: TrainPath) -> tuple[float, torch.nn.Module]:
    model = path.prepare(_net())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    stats = train_epoch(model, _batches(), build_loss("softiou"), opt, path=path)
    return stats["loss"], model


def test_channels_last_trains_the_same_network_in_another_layout():
    loss32, a = _train(FP32)
    loss_cl, b = _train(path_named("fp32-cl"))
    convs = [p for p in b.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert loss_cl == pytest.approx(loss32, rel=1e-4)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-4), name


def test_bf16_autocast_trains_with_a_float32_loss():
    loss32, _ = _train(FP32)
    loss16, model = _train(path_named("bf16"))
    assert loss16 == pytest.approx(loss32, rel=0.05)  # bfloat16 keeps ~3 significant digits
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights and optimizer stay float32


def test_explicit_paths_and_bad_names():
    assert choose_path("fp32", _net(), [], build_loss("softiou")) == FP32
    assert choose_path("fp32-cl", _net(), [], build_loss("softiou")).channels_last
    assert choose_path("auto", _net(), [], build_loss("softiou")) == FP32  # nothing to time on
    with pytest.raises(ValueError, match="unknown train path"):
        path_named("auto")
    assert isinstance(native_bf16(torch.device("cpu")), bool)


def test_auto_times_both_paths_without_touching_the_model_or_the_rng():
    model = _net()
    before = copy.deepcopy(model.state_dict())
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    chosen = choose_path("auto", model, _batches(1), build_loss("softiou"))
    assert chosen.name in ("fp32", "fp32-cl")
    assert torch.equal(torch.rand(3), expected_next)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    times = time_paths(model, *_batches(1)[0], build_loss("softiou"), lambda m, x: m(x), [FP32],
                       rounds=3, steps=1)
    assert len(times["fp32"]) == 3 and all(t > 0 for t in times["fp32"])
