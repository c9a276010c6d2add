"""How a training step runs: numeric precision and memory format (the *train path*), chosen once per run.

Paths:

- ``fp32``: float32, NCHW tensors -- the reference path (every result before the fast path used it).
- ``fp32-cl``: float32 in the channels_last memory format (weights and batches): the same arithmetic, other
  oneDNN kernels. Faster for some networks and slower for others on the same CPU (on the 2-core AMD EPYC without
  AVX-512: a random ``rep_nested`` network 1.5x faster, ``dnanet_res3`` and the RepISD-style net 0-15 % slower;
  ``docs/results.md``), so it is chosen per network.
- ``bf16``: bfloat16 autocast of the forward pass (loss, gradients' accumulation into float32 weights and the
  optimizer in float32) with channels_last. Fast only where the CPU computes bf16 natively (AMX, AVX512-BF16;
  :func:`native_bf16`); without them it is emulated (10-20x slower on AVX2). Never chosen by ``auto``: whether a
  network trained in bf16 is as accurate at a fixed budget is measured by ``bench/train_speed.py --accuracy`` on
  the machine that has it, and asked for with ``--precision bf16``.
- ``auto``: :func:`choose_path` times ``fp32`` and ``fp32-cl`` on the run's first batch (a copy of the model, an
  optimizer that does not move it, RNG states restored, so the run itself is untouched) and keeps ``fp32-cl``
  only if it is faster by more than :data:`MARGIN` in every round.

The resolved path is recorded in the run (``train_path`` in the retrain checkpoints, ``metrics.json`` and the
search state), and a resumed run continues on it. Two fresh ``auto`` runs of a network whose paths are nearly
equally fast may choose differently, and the two paths round differently: pass ``--precision fp32`` (or
``fp32-cl``) for bit-for-bit reruns.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from hnanas.envinfo import cpu_flags
from hnanas.losses import output_loss

PRECISIONS = ("auto", "fp32", "fp32-cl", "bf16")
MARGIN = 0.05  # fp32-cl must be this much faster than fp32 in every round to be chosen by auto
TRIAL_ROUNDS, TRIAL_STEPS = 2, 2  # interleaved rounds x timed steps per path (after one warm-up step each)


@dataclass(frozen=True)
class TrainPath:
    """A resolved train path (never ``auto``)."""

    name: str

    @property
    def channels_last(self) -> bool:
        return self.name in ("fp32-cl", "bf16")

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.name == "bf16" else None

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model's tensors in this path's memory format (in place; returns the model)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)


FP32 = TrainPath("fp32")


def path_named(name: str) -> TrainPath:
    if name not in PRECISIONS or name == "auto":
        raise ValueError(f"unknown train path {name!r}; choose one of: {', '.join(PRECISIONS[1:])}")
    return TrainPath(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (a CUDA GPU that supports it; a CPU with AMX-BF16 or
    AVX512-BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def forward_loss(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, loss_fn: Callable,
                 forward: Callable, path: TrainPath, device: torch.device) -> torch.Tensor:
    """The loss of one batch on ``path``: forward under the path's autocast, the loss in float32 (every loss
    of :mod:`hnanas.losses` computes in float32)."""
    with path.autocast(device):
        out = forward(model, path.batch(images))
    return output_loss(loss_fn, out, masks)


def time_paths(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, loss_fn: Callable,
               forward: Callable, paths: list[TrainPath], *, rounds: int = TRIAL_ROUNDS,
               steps: int = TRIAL_STEPS) -> dict[str, list[float]]:
    """Seconds per training step (forward, backward, optimizer step) of each path, per interleaved round, on
    copies of ``model``; torch's global RNG state is restored afterwards."""
    device = next(iter(model.parameters()), torch.zeros(())).device
    rng = torch.get_rng_state()
    out: dict[str, list[float]] = {p.name: [] for p in paths}
    try:
        for _ in range(rounds):
            for p in paths:
                m = p.prepare(copy.deepcopy(model)).train()
                opt = torch.optim.SGD(m.parameters(), lr=0.0)

                def step() -> None:
                    opt.zero_grad(set_to_none=True)
                    forward_loss(m, images, masks, loss_fn, forward, p, device).backward()
                    opt.step()

                step()
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                out[p.name].append((time.perf_counter() - t0) / steps)
    finally:
        torch.set_rng_state(rng)
    return out


def choose_path(precision: str, model: torch.nn.Module, batches: Iterable, loss_fn: Callable,
                forward: Callable | None = None, log: Callable[[str], None] | None = None) -> TrainPath:
    """The path of a run whose config says ``precision``; ``auto`` times ``fp32`` against ``fp32-cl`` on the
    first batch of ``batches`` (``(images, masks, ...)``: the run's training loader; see the module docstring),
    and takes ``fp32`` when there is none (the training loop then says why)."""
    if precision != "auto":
        return path_named(precision)
    batch = next(iter(batches), None)
    if batch is None:
        return FP32
    forward = forward or (lambda m, x: m(x))
    images, masks = batch[0], batch[1]
    device = next(iter(model.parameters()), torch.zeros(())).device
    images, masks = images.to(device), masks.to(device)
    cl = TrainPath("fp32-cl")
    times = time_paths(model, images, masks, loss_fn, forward, [FP32, cl])
    faster = all(c < (1 - MARGIN) * f for f, c in zip(times["fp32"], times["fp32-cl"]))
    chosen = cl if faster else FP32
    if log is not None:
        log(f"train path: {chosen.name} (auto: s/step fp32 {_fmt(times['fp32'])}, fp32-cl {_fmt(times['fp32-cl'])})")
    return chosen


def _fmt(values: list[float]) -> str:
    return "/".join(f"{v:.3f}" for v in values)
