"""One training budget for many networks: the retrain config every network of a comparison gets, and running
many such retrains (resumable, optionally several at a time).

A comparison is fair only if every network is trained the same way: :class:`Budget` fixes the preset's optimiser
and loss, the epochs, crops and batch, and the checkpoint choice (after every epoch, on the whole validation
subset: at CPU budgets a network's validation and test IoU swing by up to 20 points between epochs,
``docs/results.md``, so a coarser choice compares epochs, not networks). :func:`retrain_once` skips a finished
retrain, resumes an interrupted one and starts a missing one; :func:`retrain_all` does that for a list of jobs in
``workers`` processes (each training on one thread: on the 2-core machine two one-thread retrains side by side
made 1.25x the steps per second of one two-thread retrain). Retrains that share the machine must not time their
exports: :func:`budget_config` leaves latency out when ``measure_latency`` is off, for a quiet pass afterwards.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from hnanas.config import NULL
from hnanas.pipeline.presets import RetrainConfig, build_config
from hnanas.pipeline.retrain import resume_retrain, start_retrain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """How every network of a comparison is retrained."""

    epochs: int = 15  # training epochs
    crop: int = 128  # side of the square training crops, px
    batch_size: int = 8  # crops per step
    preset: str = "quick"  # optimiser, learning rate, loss and augmentation come from this retrain preset
    precision: str = "auto"  # train path (hnanas.train.fastpath)
    threads: int | None = None  # torch threads per retrain (None: torch's default)
    measure_latency: bool = True  # time each export with ONNX Runtime (cpu, 1 thread) at the end of its retrain
    warmup_epochs: float = 0.0  # linear lr warm-up over the first epochs (optim.warmup_epochs); 0: the preset's
    output_prior: float | None = None  # the logits' initial probability (train.output_prior); None: the preset's
    select_threshold: bool = False  # choose the decision threshold on validation (train.select_threshold)


def budget_config(budget: Budget, model: Mapping, data: Mapping, seed: int) -> RetrainConfig:
    """The retrain config of ``model`` (a ModelSource mapping) under ``budget`` on ``data`` (DataConfig keys:
    dataset, split, data_root, ...) with training seed ``seed``."""
    changes = {f"data.{k}": v for k, v in data.items()}
    changes.update({"data.crop_size": budget.crop, "train.epochs": budget.epochs,
                    "train.batch_size": budget.batch_size, "train.val_every": 1, "train.seed": seed,
                    "train.precision": budget.precision, "train.threads": budget.threads,
                    "latency.threads": 1, "latency.devices": ["cpu"] if budget.measure_latency else [],
                    "train.val_max_images": NULL})  # the whole validation subset (the quick preset scores 32)
    if budget.warmup_epochs:
        changes["optim.warmup_epochs"] = budget.warmup_epochs
    if budget.output_prior is not None:
        changes["train.output_prior"] = budget.output_prior
    if budget.select_threshold:
        changes["train.select_threshold"] = True
    return build_config(budget.preset, model, changes=changes)


def retrain_once(cfg: RetrainConfig, out: str | Path) -> Path:
    """Run the retrain of ``cfg`` into ``out``, resume it if it was interrupted, or do nothing if it finished."""
    out = Path(out)
    if (out / "metrics.json").exists():
        return out
    if (out / "model.json").exists():
        resume_retrain(out)
    else:
        start_retrain(cfg, out)
    return out


def die_with_parent(parent: int) -> None:
    """Make this (worker) process end when ``parent`` does: a bench killed with SIGTERM or SIGKILL must not leave
    its retrains running, or a rerun trains the same folders twice over (Linux: PR_SET_PDEATHSIG; elsewhere a
    no-op)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _worker(cfg: RetrainConfig, out: str) -> str:
    os.environ["HNANAS_PROGRESS"] = "0"  # bars of several processes would interleave
    return str(retrain_once(cfg, out))


def retrain_all(jobs: Sequence[tuple[RetrainConfig, Path]], workers: int = 1,
                done: Callable[[Path, int, int], None] | None = None) -> list[Path]:
    """:func:`retrain_once` for every ``(config, out)`` job; ``workers`` > 1 runs that many at a time in fresh
    processes (spawned: torch's thread pools do not survive a fork). ``done(out, k, n)`` is called as each
    finishes. A failing job stops the rest and raises its error."""
    pending = [(cfg, Path(out)) for cfg, out in jobs if not (Path(out) / "metrics.json").exists()]
    n, finished = len(jobs), len(jobs) - len(pending)
    if workers <= 1:
        for cfg, out in pending:
            retrain_once(cfg, out)
            finished += 1
            if done is not None:
                done(out, finished, n)
        return [Path(out) for _, out in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_worker, cfg, str(out)): out for cfg, out in pending}
        try:
            for future in as_completed(futures):
                future.result()
                finished += 1
                if done is not None:
                    done(futures[future], finished, n)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return [Path(out) for _, out in jobs]
