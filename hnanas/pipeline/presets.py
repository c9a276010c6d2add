"""The retrain configuration: typed dataclasses (one comment per field) and the ``quick`` / ``paper`` presets.

A retrain's resolved config is a :class:`RetrainConfig`; it is written to the run's ``config.yaml`` and stored in
every checkpoint. Command-line flags and ``--config FILE`` (a YAML mapping with the same keys; unknown keys are
errors) override the preset.

- ``quick``: minutes on a 2-core CPU with the synthetic dataset (the demo's retrain): 64 px crops (70 % centred
  on a target), batch 16, 40 epochs, AdamW lr 5e-3 cosine to 5e-4, SoftIoU + BCE, validation every 5 epochs on
  32 images. Measured on the synthetic data with dnanet_res3 (rep_nested): Adagrad 0.05 with SoftIoU, as DNANet
  trains for 1500 epochs, had not started to separate targets after 20 epochs (val IoU 0.001, Fa ~7e-2),
  AdamW + SoftIoU alone reached 0.008; AdamW + SoftIoU + BCE reached 0.17 after 20 and 0.35 after 40 epochs.
- ``paper``: the HNA-NAS / DNANet schedule for a GPU: 1500 epochs, Adagrad lr 0.05 (DNANet's; HNA-NAS retrains
  with 0.01), cosine to 1e-5, batch 16, 256 px crops, validation every 10 epochs on the whole validation subset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from hnanas.config import check_probability, layered, override
from hnanas.data import DataConfig
from hnanas.errors import ConfigError
from hnanas.fileio import read_yaml
from hnanas.metrics import THRESHOLD_GRID


@dataclass
class ModelSource:
    """Which network to train: a genotype of a search space, or a named baseline (exactly one)."""

    genotype: str | None = None  # genotype file (genotype.json) or name (dnanet_res3, dense_res3, random:K)
    space: str | None = None  # search space of the genotype: name in search_spaces/ or a YAML file
    baseline: str | None = None  # a named baseline (hnanas.nas.models.named_models()) or a model-spec JSON file

    def __post_init__(self) -> None:
        if (self.genotype is None) == (self.baseline is None):
            raise ValueError("give exactly one of model.genotype (with model.space) and model.baseline")
        if self.genotype is not None and self.space is None:
            raise ValueError("model.genotype needs model.space (the search space it belongs to)")


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule."""

    name: Literal["adagrad", "adamw", "sgd"] = "adagrad"  # optimizer (DNANet and HNA-NAS retrain with Adagrad)
    lr: float = 0.05  # initial learning rate
    weight_decay: float = 0.0  # weight decay (L2 for adagrad/sgd, decoupled for adamw)
    scheduler: Literal["cosine", "constant"] = "cosine"  # lr schedule, stepped after every optimizer step
    min_lr: float = 1e-5  # lr at the end of the cosine schedule
    grad_clip: float | None = None  # clip the gradient norm to this value; None: no clipping
    # linear lr warm-up over the first N epochs (rounded to optimizer steps), then the schedule; 0: none
    warmup_epochs: float = 0.0

    def __post_init__(self) -> None:
        if not self.lr > 0 or self.min_lr < 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("lr must be positive, min_lr, weight_decay and warmup_epochs non-negative")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive (or null), got {self.grad_clip}")


@dataclass
class TrainConfig:
    """The training loop."""

    epochs: int = 1500  # passes over the training list (the validation subset is held out of it)
    batch_size: int = 16  # training crops per optimizer step
    loss: str = "softiou"  # softiou | bce | dice, or a sum such as softiou+bce
    val_every: int = 10  # evaluate on the validation subset every N epochs, and after the last epoch
    val_max_images: int | None = None  # validate on the first N validation images only; None: all of them
    threshold: float = 0.5  # probability above which a pixel is target, for every metric
    # choose the threshold on the validation subset instead (at every validation: the one of `threshold_grid`
    # with the best IoU, ties nearest `threshold`), used for the checkpoint choice, the test metrics, the figure
    # and stored with the model (best.pt, model.onnx) for `predict` and `evaluate`; metrics.json also keeps the
    # test metrics at `threshold` (the field's fixed-0.5 protocol)
    select_threshold: bool = False
    # the thresholds select_threshold chooses among, increasing, each in (0, 1); default 0.01, 0.02, 0.03, 0.05,
    # 0.10, ..., 0.95, 0.97, 0.98, 0.99 (hnanas.metrics.THRESHOLD_GRID)
    threshold_grid: tuple[float, ...] = THRESHOLD_GRID
    seed: int = 0  # seed of weight initialisation, data order and augmentation
    # start predicting this probability everywhere (the logits' bias, hnanas.nas.models.set_output_prior); None:
    # the layers' default initialisation (p = 0.5 on every pixel)
    output_prior: float | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"  # torch device; auto: cuda when available, else cpu
    threads: int | None = None  # torch intra-op CPU threads; None: torch's default (one per core)
    num_workers: int = 0  # DataLoader worker processes; 0 loads in the main process
    # train path (hnanas.train.fastpath): fp32 (NCHW, the reference), fp32-cl (channels_last), bf16 (autocast, for
    # CPUs with AMX/AVX512-BF16 and GPUs), auto (the faster of fp32 and fp32-cl, timed on the first batch)
    precision: Literal["auto", "fp32", "fp32-cl", "bf16"] = "auto"
    figure_images: int = 4  # test images drawn in predictions.png (0: no figure)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.val_every < 1:
            raise ValueError("epochs, batch_size and val_every must be at least 1")
        if self.val_max_images is not None and self.val_max_images < 1:
            raise ValueError(f"val_max_images must be at least 1 (or null), got {self.val_max_images}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        if not self.threshold_grid or any(not 0.0 < t < 1.0 for t in self.threshold_grid) or any(
                a >= b for a, b in zip(self.threshold_grid, self.threshold_grid[1:])):
            raise ValueError(f"threshold_grid must be increasing thresholds in (0, 1), got {list(self.threshold_grid)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or null), got {self.threads}")
        if self.num_workers < 0 or self.figure_images < 0:
            raise ValueError("num_workers and figure_images must be >= 0")
        check_probability(self.output_prior, "output_prior")


@dataclass
class LatencyConfig:
    """How the exported deploy-form model is timed with ONNX Runtime."""

    devices: list[str] | None = None  # devices to measure; None: every local device whose providers run here
    threads: int | None = None  # ORT intra-op threads; None: the latency table's, else the device's default
    sessions: int = 3  # fresh sessions timed; the result is the median of their medians
    size: list[int] | None = None  # [H, W] timed; None: the space's deploy size (256x256 for baselines)

    def __post_init__(self) -> None:
        if self.sessions < 1:
            raise ValueError(f"sessions must be at least 1, got {self.sessions}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or null), got {self.threads}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 8):
            raise ValueError(f"size must be [H, W] with both at least 8, got {self.size}")


@dataclass
class RetrainConfig:
    """Everything a retrain run needs; written to ``config.yaml`` and into every checkpoint."""

    model: ModelSource  # the network to train
    preset: str = "paper"  # the preset these values started from (informative)
    data: DataConfig = field(default_factory=DataConfig)  # dataset, split, crops, validation carve
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimizer and schedule
    train: TrainConfig = field(default_factory=TrainConfig)  # the training loop
    latency: LatencyConfig = field(default_factory=LatencyConfig)  # ONNX Runtime measurement of the result


PRESETS: dict[str, dict] = {
    "quick": {
        "data": {"crop_size": 64, "target_prob": 0.7},
        "optim": {"name": "adamw", "lr": 5e-3, "weight_decay": 1e-4, "min_lr": 5e-4},
        "train": {"epochs": 40, "batch_size": 16, "loss": "softiou+bce", "val_every": 5, "val_max_images": 32},
    },
    "paper": {
        "data": {"crop_size": 256, "target_prob": 0.5},
        "optim": {"name": "adagrad", "lr": 0.05, "weight_decay": 0.0, "min_lr": 1e-5},
        "train": {"epochs": 1500, "batch_size": 16, "loss": "softiou", "val_every": 10, "val_max_images": None},
    },
}


def preset_names() -> list[str]:
    return list(PRESETS)


def build_config(preset: str, model: Mapping, *, base: Mapping | None = None, file: str | Path | None = None,
                 changes: Mapping[str, Any] | None = None) -> RetrainConfig:
    """The resolved config: defaults < ``base`` (e.g. a search run's data section) < preset ``preset`` <
    ``file`` (a YAML mapping of RetrainConfig keys) < ``changes`` (dotted keys from the command line:
    :func:`hnanas.config.nest`); the model comes from ``model`` only. Every layer is checked strictly (unknown
    keys are errors naming their source)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    layers: list[tuple[str, Mapping]] = [("defaults", {"model": dict(model), "preset": preset}),
                                         ("search run", base or {}), (f"preset {preset}", PRESETS[preset])]
    if file is not None:
        extra = read_yaml(file) or {}
        if not isinstance(extra, Mapping):
            raise ConfigError(f"{file}: expected a mapping of config sections at the top level")
        if "model" in extra:
            raise ConfigError(f"{file}: 'model' is chosen on the command line (--genotype/--space or --model), "
                              f"not in the config file; remove it")
        layers.append((str(file), extra))
    return override(layered(RetrainConfig, layers), changes or {}, source="command line")
