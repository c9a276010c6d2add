"""``hnanas retrain``: train a found (or baseline) network from scratch, choose the checkpoint on the validation
subset carved from the train list, then test, re-parameterise, export and measure it (:mod:`hnanas.pipeline.finish`).

The run folder (``runs/NAME/retrain/`` by default) holds ``config.yaml``, ``env.json``, ``run.log``,
``model.json`` (the model spec, the source of truth on resume), ``retrain_log.csv`` (one row per epoch),
``last.pt`` (everything needed to continue: weights, optimizer and schedule states, RNG states, best so far) and
``best.pt`` (the chosen weights, self-describing), then the outputs of the final phase.

Determinism: weights are initialised after seeding; epoch ``e`` visits the training images in a permutation that
depends only on ``(seed, e)`` and each crop only on ``(seed, e, index)``; checkpoints are taken at epoch ends. A
run killed at any point and resumed therefore ends with exactly the weights of an uninterrupted run (same
machine, same thread count).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch.utils.data import DataLoader, Subset

from hnanas.config import nest, to_dict
from hnanas.data import build_data
from hnanas.envinfo import environment
from hnanas.errors import ConfigError, HnanasError
from hnanas.fileio import read_json, write_json
from hnanas.nas.models import build_model, set_output_prior
from hnanas.pipeline.finish import RetrainResult, finish_retrain
from hnanas.pipeline.presets import RetrainConfig
from hnanas.pipeline.sources import resolve_spec
from hnanas.runs import RunDir
from hnanas.train.epochs import RETRAIN_KEYS, Trainee, run_epochs
from hnanas.train.fastpath import choose_path, path_named
from hnanas.train.loaders import EpochSampler, eval_loader
from hnanas.train.loop import evaluate, train_epoch
from hnanas.train.optim import (build_optimizer, build_scheduler, build_train_loss, resolve_device, set_seed,
                                warmup_steps)

log = logging.getLogger(__name__)

LOG_FIELDS = ("epoch", "step", "loss", "lr", "seconds", "val_loss", "val_iou", "val_niou", "val_pd", "val_fa",
              "best_val_iou")


def start_retrain(cfg: RetrainConfig, out: str | Path) -> RetrainResult:
    """A new retrain run in ``out`` (which must not exist yet, or be empty)."""
    spec = resolve_spec(cfg.model.genotype, cfg.model.space, cfg.model.baseline)
    run = RunDir.create(out)
    run.write_config(cfg)
    write_json(run.file("model.json"), spec)
    return _run(run, cfg, spec)


def resume_retrain(out: str | Path, changes: Mapping | None = None) -> RetrainResult:
    """Continue the retrain run in ``out`` from its last checkpoint. ``changes`` (dotted keys of options given on
    the command line) must agree with the run's config: a resumed run keeps its config."""
    run = RunDir.create(out, resume=True)
    cfg = run.read_config(RetrainConfig)
    saved = to_dict(cfg)
    for section, values in nest(changes or {}).items():
        for key, value in (values.items() if isinstance(values, dict) else [(None, values)]):
            have = saved.get(section) if key is None else saved.get(section, {}).get(key)
            if have != value:
                name = section if key is None else f"{section}.{key}"
                raise ConfigError(f"{run.config_path}: {name} is {have!r} in this run, not {value!r}; a resumed run "
                                  f"keeps its config (start a new run with another --out to change it)")
    if not run.file("model.json").is_file():  # killed between its two first files: its config names the model
        spec = resolve_spec(cfg.model.genotype, cfg.model.space, cfg.model.baseline)
        write_json(run.file("model.json"), spec)
        log.info("%s: missing (the run was killed before it started); resolved again from %s", run.file("model.json"),
                 run.config_path)
    return _run(run, cfg, read_json(run.file("model.json")))


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(run: RunDir, cfg: RetrainConfig, spec: dict) -> RetrainResult:
    with run.exclusive(), run.discard_if_refused(), run.logging_to_file(), _torch_threads(cfg.train.threads):
        device = resolve_device(cfg.train.device)
        run.write_env({"torch_device": str(device), "resumed": run.resumed})
        log.info("retrain %s in %s (%s preset, %d epochs, device %s)", spec.get("kind"), run.path, cfg.preset,
                 cfg.train.epochs, device)
        data = build_data(cfg.data)
        data.train.seed = cfg.train.seed  # augmentation follows the training seed; the validation carve does not
        log.info("data: %s", data.describe())
        if len(data.train) == 0:
            raise HnanasError(f"{data.index.root}: split {data.split.name} has no usable training image")
        input_norm = [float(data.stats.mean), float(data.stats.std)]
        if cfg.train.num_workers > 0:  # decode once here, so forked workers share the cache
            data.store.preload([*data.train.ids, *data.val.ids, *data.test.ids])

        set_seed(cfg.train.seed)
        model = build_model(spec).to(device)
        set_output_prior(model, cfg.train.output_prior)
        loss_fn = build_train_loss(cfg.train.loss)
        t = cfg.train
        sampler = EpochSampler(len(data.train), t.seed)
        loader = DataLoader(data.train, batch_size=t.batch_size, sampler=sampler, num_workers=t.num_workers,
                            drop_last=len(data.train) > t.batch_size, pin_memory=device.type == "cuda")
        n_val = len(data.val) if t.val_max_images is None else min(len(data.val), t.val_max_images)
        val_loader = eval_loader(Subset(data.val, range(n_val)), t.num_workers) if n_val else None
        optimizer = build_optimizer(model.parameters(), cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay)
        steps_per_epoch = len(loader)
        scheduler = build_scheduler(optimizer, cfg.optim.scheduler, t.epochs * steps_per_epoch, cfg.optim.min_lr,
                                    warmup=warmup_steps(cfg.optim.warmup_epochs, steps_per_epoch))
        # with a chosen threshold the log keeps the config's too (val_iou_at_config): curves comparable with 0.5 runs
        csv_log = run.csv_log("retrain_log.csv",
                              LOG_FIELDS + (("val_threshold", "val_iou_at_config") if t.select_threshold else ()))

        start, best = 0, {"epoch": None, "val_iou": None}
        state = run.load_checkpoint("last.pt") if run.resumed and run.has_checkpoint("last.pt") else None
        if state is not None:  # a resumed run continues on its path (fp32 before train paths existed)
            path = path_named(state.get("train_path", "fp32"))
        else:
            sampler.set_epoch(start)
            data.train.set_epoch(start)
            path = choose_path(t.precision, model, loader, loss_fn, log=log.info)
        path.prepare(model)
        log.info("train path: %s", path.name)
        trainee = Trainee(model, optimizer, scheduler, keys=RETRAIN_KEYS)
        if state is not None:
            if state.get("model_spec") != spec:
                raise HnanasError(f"{run.file('last.pt')}: holds another model than {run.file('model.json')}")
            trainee.restore(state)
            start, best = int(state["epoch"]), dict(state["best"])
            dropped = csv_log.truncate_after(start)
            log.info("resuming after epoch %d of %d (dropped %d log rows written after that checkpoint)", start,
                     t.epochs, dropped)
        elif run.resumed:
            csv_log.truncate_after(0)
            log.info("no checkpoint yet in %s; starting from epoch 1", run.path)

        def entries(epoch: int) -> dict:  # a checkpoint without its weights (last.pt's come from the Trainee)
            return {"kind": "retrain", "epoch": epoch, "step": epoch * steps_per_epoch, "model_spec": spec,
                    "input_norm": input_norm, "config": to_dict(cfg), "best": dict(best), "train_path": path.name,
                    "environment": environment({"torch_device": str(device)})}

        def checkpoint(epoch: int) -> dict:
            return {**entries(epoch), "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()}}

        shown = {"loss": "-"}  # the progress bar's postfix

        def one_epoch(epoch: int) -> dict:
            nonlocal best
            started = time.perf_counter()
            data.train.set_epoch(epoch)
            sampler.set_epoch(epoch)
            stats = train_epoch(model, loader, loss_fn, optimizer, scheduler=scheduler, path=path,
                                grad_clip=cfg.optim.grad_clip, desc=f"epoch {epoch + 1}/{t.epochs}")
            row = {"epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch, "loss": stats["loss"],
                   "lr": stats["lr"], "seconds": stats["seconds"]}
            last = epoch + 1 == t.epochs
            if val_loader is not None and ((epoch + 1) % t.val_every == 0 or last):
                vm = evaluate(model, val_loader, threshold=t.threshold, loss_fn=loss_fn, desc="validate",
                              select_threshold=t.select_threshold, thresholds=t.threshold_grid,
                              also_at=t.threshold if t.select_threshold else None)
                row.update({f"val_{k}": vm[k] for k in ("loss", "iou", "niou", "pd", "fa")})
                if t.select_threshold:
                    row["val_threshold"] = vm["threshold"]
                    row["val_iou_at_config"] = vm["also_at"]["iou"]
                if improves(vm, best):
                    best = {"epoch": epoch + 1, "val_iou": vm["iou"], "val_niou": vm["niou"], "val_pd": vm["pd"],
                            "val_fa": vm["fa"], "val_loss": vm["loss"], "val_images": vm["n_images"]}
                    if t.select_threshold:  # stored only when chosen: without the option the config's 0.5 holds
                        best["threshold"] = vm["threshold"]
                    run.save_checkpoint(checkpoint(epoch + 1), "best.pt")
            elif val_loader is None and last:  # nothing to choose with: the last epoch is the result
                best = {"epoch": epoch + 1, "val_iou": None}
                run.save_checkpoint(checkpoint(epoch + 1), "best.pt")
            row["seconds"] = time.perf_counter() - started
            row["best_val_iou"] = best["val_iou"]
            csv_log.append(row)
            shown["loss"] = f"{stats['loss']:.4f}"
            shown["said"] = (f"epoch {epoch + 1}/{t.epochs}: loss {stats['loss']:.4f}, lr {stats['lr']:.3g}"
                             + (f", val IoU {row['val_iou']:.4f}" if "val_iou" in row else "")
                             + (f" at threshold {row['val_threshold']:g}" if "val_threshold" in row else ""))
            return entries(epoch + 1)

        def save(epoch: int, state: dict) -> None:
            run.save_checkpoint(state, "last.pt")
            log.info("%s", shown["said"])  # after the save: a logged epoch is never redone by a resume

        run_epochs(trainee, start, t.epochs, one_epoch, save, desc="retrain",
                   postfix=lambda: {"loss": shown["loss"], "best_val_iou": _fmt(best["val_iou"])})
        model.to(memory_format=torch.contiguous_format)
        return finish_retrain(run, cfg, spec, model, data, best)


def improves(val: dict, best: dict) -> bool:
    """Whether validation metrics ``val`` (``iou``, ``loss``) beat the ``best`` so far (``val_iou``, ``val_loss``):
    a higher IoU, or the same IoU at a lower loss. The tie rule matters when IoU is flat (often 0 for the first
    epochs of a small network): the checkpoint kept is then the better-fitted later one, not epoch 1's. A ``best``
    without ``val_loss`` (checkpoints of older runs) loses ties."""
    if best["val_iou"] is None or val["iou"] > best["val_iou"]:
        return True
    return val["iou"] == best["val_iou"] and val["loss"] < best.get("val_loss", math.inf)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
