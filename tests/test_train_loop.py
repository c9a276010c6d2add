"""The shared batch loop: training steps, evaluation on padded batches, deep supervision, optimizers, schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from hnanas.data import collate_eval
from hnanas.data.augment import pad_to_multiple
from hnanas.errors import ConfigError, HnanasError
from hnanas.losses import build_loss
from hnanas.nas.genotype import named_genotypes
from hnanas.nas.network import derive
from hnanas.nas.space import load_space
from hnanas.train.loaders import EpochSampler
from hnanas.train.loop import evaluate, predict, train_epoch
from hnanas.train.optim import build_optimizer, build_scheduler, resolve_device


class Oracle(nn.Module):
    """Logits +-10 from the input: a pixel is target where the image is > 0.5 (so the mask *is* the image)."""

    def __init__(self, aux: bool = False):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.aux = aux

    def forward(self, x):
        main = 20.0 * (x - 0.5) + 0.0 * self.dummy
        return [-main, main] if self.aux else main  # a deep-supervision list: the last entry is the main output


def target_batches(n_batches=3, batch=4, size=32, seed=0):
    """Fixed batches whose target is the bright blob: image = blob + noise, mask = blob."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_batches):
        masks = torch.zeros(batch, 1, size, size)
        for k in range(batch):
            y, x = torch.randint(2, size - 6, (2,), generator=g).tolist()
            masks[k, 0, y:y + 4, x:x + 4] = 1
        images = 2.0 * masks + 0.3 * torch.randn(batch, 1, size, size, generator=g)
        batches.append((images, masks, [f"i{k}" for k in range(batch)]))
    return batches


def test_loss_decreases_on_a_tiny_overfit_problem():
    space = load_space("tiny")
    torch.manual_seed(0)
    model = derive(space, named_genotypes(space)["chain_res3"])
    loss_fn = build_loss("softiou")
    optimizer = build_optimizer(model.parameters(), "adagrad", 0.05)
    batches = target_batches()
    first = train_epoch(model, batches, loss_fn, optimizer)
    for _ in range(19):
        last = train_epoch(model, batches, loss_fn, optimizer)
    assert first["steps"] == last["steps"] == 3 and last["images"] == 12
    assert first["loss"] > 0.9 and last["loss"] < 0.1, (first["loss"], last["loss"])


def test_after_step_scheduler_and_grad_clip_are_applied_per_step():
    model = nn.Conv2d(1, 1, 3, padding=1)
    optimizer = build_optimizer(model.parameters(), "sgd", 0.1)
    scheduler = build_scheduler(optimizer, "cosine", 6, min_lr=0.001)
    seen = []
    train_epoch(model, target_batches(), build_loss("bce"), optimizer, scheduler=scheduler, grad_clip=1e-3,
                after_step=seen.append)
    assert seen == [0, 1, 2]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001 + (0.1 - 0.001) * 0.5 * (1 + math.cos(math.pi / 2)))
    stats = train_epoch(model, target_batches(), build_loss("bce"), optimizer, scheduler=scheduler)
    assert stats["lr"] == pytest.approx(0.001)  # the end of the cosine, where it stays
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_non_finite_loss_stops_before_the_optimizer_step():
    model = nn.Conv2d(1, 1, 3, padding=1)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = build_optimizer(model.parameters(), "adagrad", 0.05)
    with pytest.raises(HnanasError, match=r"epoch 3: the loss became nan at step 1 .*last good checkpoint"):
        train_epoch(model, target_batches(), lambda out, y: out.sum() * float("nan"), optimizer, desc="epoch 3")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_deep_supervision_loss_is_the_mean_over_outputs_and_eval_uses_the_last():
    model = Oracle(aux=True)
    loss_fn = build_loss("softiou")
    batches = target_batches(1)
    images, masks, _ = batches[0]
    expected = (loss_fn(-20.0 * (images - 0.5), masks) + loss_fn(20.0 * (images - 0.5), masks)) / 2
    stats = train_epoch(model, batches, loss_fn, build_optimizer(model.parameters(), "sgd", 1e-9))
    assert stats["loss"] == pytest.approx(float(expected), rel=1e-6)
    loader = [collate_eval([(m, m, (32, 32), f"m{k}") for k, m in enumerate(masks)])]
    assert evaluate(model, loader)["iou"] == 1.0  # the first (wrong) output would give IoU 0


def padded_items(seed=0):
    """Eval items whose padding (bottom/right, to 32) looks like target in the image but not in the mask."""
    rng = np.random.default_rng(seed)
    items = []
    for k, (h, w) in enumerate([(20, 45), (33, 17), (32, 32)]):
        mask = np.zeros((h, w), np.float32)
        mask[rng.integers(0, h - 3), rng.integers(0, w - 3)] = 1  # one-pixel targets
        mask[h - 3:h - 1, 1:3] = 1
        image = pad_to_multiple(mask, 32, 1.0)
        items.append((torch.from_numpy(image[None]), torch.from_numpy(pad_to_multiple(mask, 32, 0.0)[None]),
                      (h, w), f"img{k}"))
    return items


def test_evaluate_crops_padding_back_to_each_images_true_size():
    items = padded_items()
    loader = [collate_eval(items[:2]), collate_eval(items[2:])]  # the first batch mixes two padded sizes
    m = evaluate(Oracle(), loader, loss_fn=build_loss("softiou"), average_precision=True)
    assert (m["iou"], m["niou"], m["pd"], m["fa"]) == (1.0, 1.0, 1.0, 0.0)
    assert m["ap"] == 1.0  # the padding, as bright as the targets but not in the masks, would lower it
    assert "ap" not in evaluate(Oracle(), loader)
    assert m["n_images"] == 3 and m["total_pixels"] == 20 * 45 + 33 * 17 + 32 * 32
    assert m["loss"] < 0.05  # the padding counted as target would give a loss near 1
    probs = dict(predict(Oracle(), loader))
    assert {k: v.shape for k, v in probs.items()} == {"img0": (20, 45), "img1": (33, 17), "img2": (32, 32)}
    assert probs["img1"].dtype == np.float32 and probs["img1"].max() > 0.99


def test_evaluate_restores_train_mode_and_honours_max_batches():
    model = Oracle().train()
    items = padded_items()
    loader = [collate_eval([item]) for item in items]
    assert evaluate(model, loader, max_batches=2)["n_images"] == 2
    assert model.training
    with pytest.raises(HnanasError, match="no images to evaluate"):
        evaluate(model, [])


def test_optimizer_and_scheduler_names_and_errors():
    params = [nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer(params, "AdaGrad", 0.05), torch.optim.Adagrad)
    assert isinstance(build_optimizer(params, "adamw", 1e-3), torch.optim.AdamW)
    assert build_optimizer(params, "sgd", 0.1).param_groups[0]["momentum"] == 0.9
    with pytest.raises(ConfigError, match="unknown optimizer 'adam'"):
        build_optimizer(params, "adam", 0.1)
    opt = build_optimizer(params, "sgd", 0.1)
    constant = build_scheduler(opt, "constant", 5)
    for _ in range(7):
        opt.step()
        constant.step()
    assert opt.param_groups[0]["lr"] == 0.1
    with pytest.raises(ConfigError, match="min_lr 0.5 is above"):
        build_scheduler(opt, "cosine", 5, min_lr=0.5)
    with pytest.raises(ConfigError, match="unknown lr schedule"):
        build_scheduler(opt, "step", 5)
    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type in ("cpu", "cuda")


def test_lr_warmup_ramps_linearly_then_follows_the_schedule_and_resumes():
    def lrs(name, warmup, steps=12, resume_at=None):
        opt = build_optimizer([nn.Parameter(torch.zeros(2))], "adamw", 0.01)
        sched = build_scheduler(opt, name, 10, min_lr=0.001, warmup=warmup)
        out = []
        for step in range(steps):
            out.append(opt.param_groups[0]["lr"])
            if step == resume_at:  # a resumed run: a fresh scheduler given the saved state
                state = sched.state_dict()
                sched = build_scheduler(opt, name, 10, min_lr=0.001, warmup=warmup)
                sched.load_state_dict(state)
            opt.step()
            sched.step()
        return out

    plain, warm = lrs("cosine", 0), lrs("cosine", 4)
    assert warm[:4] == pytest.approx([plain[k] * (k + 1) / 4 for k in range(4)])
    assert warm[4:] == pytest.approx(plain[4:]) and plain[10:] == pytest.approx([0.001, 0.001])
    assert lrs("cosine", 4, resume_at=2) == pytest.approx(warm)
    assert lrs("constant", 3)[:5] == pytest.approx([0.01 / 3, 0.02 / 3, 0.01, 0.01, 0.01])
    with pytest.raises(ConfigError, match="warm-up must be >= 0"):
        lrs("cosine", -1)


def test_epoch_sampler_order_depends_only_on_seed_and_epoch():
    a, b = EpochSampler(50, seed=3), EpochSampler(50, seed=3)
    b.set_epoch(1)
    b.set_epoch(2)
    a.set_epoch(2)
    assert list(a) == list(b) and sorted(a) == list(range(50))
    a.set_epoch(3)
    assert list(a) != list(b)
    assert list(EpochSampler(50, seed=4)) != list(EpochSampler(50, seed=3))
