"""Search configuration: typed dataclasses (one comment per field) and the ``quick`` / ``paper`` presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from hnanas.config import check_probability, layered, override
from hnanas.data.bundle import DataConfig
from hnanas.errors import ConfigError


@dataclass
class StageConfig:
    epochs: int = 8  # epochs of this stage (an epoch = one pass over the train crops)
    warmup_epochs: int = 2  # first epochs train weights only (random gates / random paths), no architecture steps
    arch_every: int = 2  # weight steps per architecture step (HNA-NAS: 5)
    arch_lr: float = 5e-3  # Adam learning rate of the architecture parameters (betas 0, 0.999 as HNA-NAS)
    tau_start: float = 1.0  # stage 1: Gumbel-sigmoid temperature at the first architecture epoch ...
    tau_end: float = 0.2  # ... annealed exponentially to this at the last epoch
    paths: int = 2  # stage 2: ops sampled per architecture step (binary gate over them, ProxylessNAS)
    mode: Literal["proxyless", "mixture"] = "proxyless"  # stage 2: sampled paths, or a DARTS mixture of all ops

    def __post_init__(self) -> None:
        if self.epochs < 1 or not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError("need epochs >= 1 and 0 <= warmup_epochs < epochs")
        if self.arch_every < 1 or self.paths < 1 or self.tau_start <= 0 or self.tau_end <= 0:
            raise ValueError("arch_every, paths, tau_start and tau_end must be positive")


@dataclass
class HalvingConfig:
    """The ``halving`` strategy: stand-alone candidates trained briefly, the better ones longer (successive
    halving through Optuna's pruner), sampled by Optuna's TPE with the latency budget as a constraint."""

    trials: int = 27  # candidates tried (infeasible ones are not trained)
    min_epochs: int = 1  # epochs every candidate trains before its first comparison (the first rung)
    max_epochs: int = 9  # epochs of a candidate that is never stopped
    # when set, min_epochs and max_epochs are epochs on a training split of this many images: on another split
    # they scale by this / its size (whole epochs, at most that many images, at least one epoch), so that a rung
    # is the same amount of training on every dataset; None: epochs as given
    rung_images: int | None = None
    # False: only max_epochs scales with rung_images, min_epochs is epochs on every split. On the NUDT-SIRST
    # ledgers the first cut after 2 epochs ranks worse than after 3 (pooled tau +0.31 / +0.50), while NUAA-SIRST's
    # scaled first rung already comes after 3; min_epochs 3 unscaled is 3:8 on NUDT-SIRST and 3:15 on NUAA-SIRST
    # (bench/halving_replay.py, docs/results.md). True: both scale, as the cpu preset does
    scale_first_rung: bool = True
    eta: int = 3  # reduction factor: a candidate continues past a rung if it is in the best 1/eta there
    # the accuracy signal ranked at each rung: the validation or training loss of the epoch, 1 - the epoch's
    # validation IoU, or best_val_iou: 1 - the best validation IoU so far plus a thousandth of the epoch's
    # validation loss (which orders the candidates that do not segment yet), or val_ap: 1 - the average precision
    # of the validation pixels ranked by probability (threshold-free: it tells apart candidates whose IoU is
    # still 0), or best_val_iou_ap: best_val_iou with a thousandth of 1 - that AP as the tie-break, or
    # best_val_iou_niou: 1 - the best so far of the epoch's (validation IoU + nIoU) / 2, the validation loss as the
    # tie-break (nIoU, the per-image mean IoU, weighs every image alike where IoU pools their pixels)
    metric: Literal["val_loss", "train_loss", "val_iou", "best_val_iou", "val_ap", "best_val_iou_ap",
                    "best_val_iou_niou"] = "val_loss"
    # weight w of the candidate's ln gradient norm at initialisation (hnanas.search.proxies.init_grad_norm: the mean
    # over grad_norm_batches fixed training batches, one fixed initialisation each) added to its signal at every
    # epoch: score = signal + w * ln(grad norm). A second opinion that costs no training: on the search-vs-random
    # ledgers a lower initial gradient norm goes with a higher test IoU (bench/ledger_proxies.py); 0: not computed
    grad_norm_weight: float = 0.0
    grad_norm_batches: int = 3
    val_images: int | None = None  # validation images scored per epoch; None: the whole validation subset
    # a candidate's validation IoU (val_iou, best_val_iou) at the threshold of hnanas.metrics.THRESHOLD_GRID with
    # the best IoU at that validation, instead of at 0.5: as a retrain with train.select_threshold chooses and is
    # scored. Set it when the found network will be retrained that way, so candidates are ranked as it will be
    select_threshold: bool = False
    startup_trials: int = 10  # candidates drawn at random before TPE models the good ones
    # the start-up candidates are halved as one batch (hnanas.search.rungs.halve_batch): each trains to the first
    # rung before any trains further, the best 1/eta of them go on to the next rung, and so on; the TPE
    # candidates after them are halved as they come. False: every candidate as it comes (Optuna's asynchronous
    # halving lets the first candidate through every rung unopposed)
    sync_startup: bool = False
    min_lr: float = 1e-5  # a candidate's learning rate at the end of its cosine schedule (over max_epochs)
    # under a latency budget T, candidates the table prices below floor * T are not trained either: the search
    # spends the budget (as the two-stage search's fill does) and its result is comparable at that latency
    floor: float = 0.0
    # the best `finalists` candidates that trained max_epochs are trained again from scratch on final_seeds - 1
    # more seeds (other initial weights, other crops) and the one with the best mean final score is the result:
    # one training run's validation IoU is a noisy estimate of a network's (where fewer than `finalists` trained
    # max_epochs, the candidates stopped latest fill in, their search run trained on to max_epochs first). 1: the
    # search's own run decides (the
    # cpu preset too: 2 costs 6-18 min more there, 69 min in all on NUDT-SIRST at 53.4 ms, and with 12 candidates
    # to pay for it the 18 ms NUDT-SIRST search missed; docs/results.md)
    final_seeds: int = 1
    finalists: int = 2
    # a time budget: no candidate starts once the candidates' training (the summed epoch seconds of trials.csv,
    # before a resume too) has taken this many minutes, and the one in training then stops after its epoch
    # unless no candidate has finished yet (it finishes, so there is a result); the finalists' extra runs come
    # after it. Fewer candidates on a slower machine, so another network: the result depends on the machine.
    # None: no limit, the same schedule on every machine (the result can still differ between CPU models: their
    # kernels round differently, validation IoU curves drift apart and halving decides otherwise; docs/results.md).
    # The cpu preset: 55, so that its search keeps to the hour it promises (NUDT-SIRST 53.4 ms, seed 1: 16
    # candidates took 79 min on a Zen 4 EPYC without it, and the cap would have kept its network; the other
    # preset searches measured took at most 52 min and are unchanged)
    time_limit_min: float | None = None

    def __post_init__(self) -> None:
        if self.trials < 1 or self.min_epochs < 1 or self.max_epochs < self.min_epochs or self.eta < 2:
            raise ValueError("need trials >= 1, 1 <= min_epochs <= max_epochs and eta >= 2")
        if self.final_seeds < 1 or self.finalists < 1:
            raise ValueError(f"need final_seeds >= 1 and finalists >= 1 (got {self.final_seeds}, {self.finalists})")
        if self.rung_images is not None and self.rung_images < 1:
            raise ValueError(f"need rung_images >= 1 or None (got {self.rung_images})")
        if self.val_images is not None and self.val_images < 1:
            raise ValueError(f"need val_images >= 1 or None (got {self.val_images})")
        if self.time_limit_min is not None and not self.time_limit_min > 0:
            raise ValueError(f"need time_limit_min > 0 or None (got {self.time_limit_min})")
        if self.grad_norm_weight < 0 or self.grad_norm_batches < 1:
            raise ValueError(f"need grad_norm_weight >= 0 and grad_norm_batches >= 1 (got {self.grad_norm_weight}, "
                             f"{self.grad_norm_batches})")
        if not 0 <= self.floor < 1 or self.min_lr < 0:
            raise ValueError(f"need 0 <= floor < 1 and min_lr >= 0 (got floor {self.floor}, min_lr {self.min_lr})")


@dataclass
class SearchConfig:
    preset: Literal["quick", "cpu", "paper"] = "quick"  # which defaults this config started from
    strategy: str = "two-stage"  # search strategy (hnanas.search.strategy registry): two-stage, ...
    data: DataConfig = field(default_factory=DataConfig)  # dataset, split, crops, validation carve
    space: str = "rep_nested"  # search-space name or YAML file
    device: str = "cpu"  # the device whose latency table prices architectures
    threads: int = 1  # the table's ONNX Runtime thread count
    table: str | None = None  # latency table CSV; None: latency_tables/<space>_<device>_t<threads>.csv
    latency_weight: float = 0.1  # lambda: weight of the latency term (0 = accuracy only)
    target_latency_ms: float | None = None  # T; None: the expected latency when architecture steps start
    # T relative to this table's prices: this x the mean predicted latency of random networks of the space
    # (hnanas.search.context.reference_latency_ms), resolved into target_latency_ms when the search starts
    target_latency_scale: float | None = None
    # seg + l*(E-T)/T, seg*a*(log E/log T)^b, or seg + l*max(0, E-T)/T (a budget: needs target_latency_ms)
    latency_loss: Literal["add-linear", "mul-log", "hinge"] = "add-linear"
    mul_log_alpha: float = 0.2  # alpha of mul-log (ProxylessNAS / HNA-NAS)
    mul_log_beta: float = 0.3  # beta of mul-log
    stage1_latency_op: str = "mean"  # stage 1 prices a node with the mean over candidate ops, or one op's name
    edge_threshold: float = 0.5  # stage 1 keeps edges whose keep-probability exceeds this
    loss: str = "softiou"  # segmentation loss: softiou | bce | dice, or a sum such as softiou+bce
    optimizer: str = "adagrad"  # weight optimizer: adagrad (DNANet/HNA-NAS) | adamw | sgd
    lr: float = 0.05  # weight learning rate (cosine-annealed within each stage)
    # linear lr warm-up over the first N epochs of each stage (two-stage) or candidate (halving); 0: none. Set it
    # as the comparison's retrains set optim.warmup_epochs, so candidates train as the found network will
    lr_warmup_epochs: float = 0.0
    # start every candidate (halving) or supernet (two-stage) predicting this probability everywhere (the logits'
    # bias, hnanas.nas.models.set_output_prior), as the comparison's retrains set train.output_prior; None: p = 0.5
    output_prior: float | None = None
    weight_decay: float = 0.0  # weight decay of the weights
    batch_size: int = 12  # crops per weight step and per architecture step (per process)
    val_images: int | None = None  # validation images scored each epoch (the first N of the subset); None: all
    seed: int = 0  # seed of weights, data order, sampling: the same seed gives the same search
    train_device: str = "auto"  # torch device for training: auto (cuda if available) | cpu | cuda
    # train path of the supernets' weight steps (hnanas.train.fastpath): fp32, fp32-cl, bf16, or auto (the faster
    # of fp32 and fp32-cl, timed at the start of each stage; fp32 when several processes share the search)
    precision: Literal["auto", "fp32", "fp32-cl", "bf16"] = "auto"
    stage1: StageConfig = field(default_factory=StageConfig)  # topology stage
    stage2: StageConfig = field(default_factory=lambda: StageConfig(epochs=10, warmup_epochs=3))  # op stage
    halving: HalvingConfig = field(default_factory=HalvingConfig)  # the halving strategy

    def __post_init__(self) -> None:
        if self.latency_weight < 0 or self.lr_warmup_epochs < 0:
            raise ValueError("latency_weight and lr_warmup_epochs must be >= 0")
        check_probability(self.output_prior, "output_prior")
        if self.target_latency_ms is not None and self.target_latency_ms <= 0:
            raise ValueError("target_latency_ms must be positive")
        if self.target_latency_scale is not None and self.target_latency_scale <= 0:
            raise ValueError("target_latency_scale must be positive")
        if (self.latency_loss == "hinge" and self.target_latency_ms is None and self.target_latency_scale is None
                and self.latency_weight > 0):
            raise ValueError("latency_loss hinge is a latency budget: set target_latency_ms (--target-latency MS) "
                             "or target_latency_scale (--target-scale F)")
        budget = self.latency_loss == "hinge" and self.latency_weight > 0 and (
            self.target_latency_ms is not None or self.target_latency_scale is not None)
        if self.halving.floor > 0 and (self.strategy != "halving" or not budget):
            raise ValueError(f"halving.floor {self.halving.floor} bounds the halving strategy's latency budget: "
                             f"use it with strategy halving and latency_loss hinge, a positive latency_weight and "
                             f"target_latency_ms (--latency-loss hinge --target-latency MS or --target-scale F)")

    @property
    def latency_budget_ms(self) -> float | None:
        """T when the latency term is a budget (hinge, switched on), else None."""
        return self.target_latency_ms if self.latency_loss == "hinge" and self.latency_weight > 0 else None


PRESETS: dict[str, dict] = {
    # <= 10 min on a 2-core CPU on the synthetic dataset: small crops, few epochs.
    # Few architecture steps, so a larger architecture learning rate than HNA-NAS's 5e-3 (which assumes
    # thousands of steps) lets the distributions actually decide within the budget. Most epochs are warm-up:
    # until the supernet segments at all, the only consistent architecture gradient is the latency term's, and
    # the search collapses to the cheapest network. Measured on the synthetic data (seed 0, rep_nested): with 12
    # of 16 stage-1 epochs as warm-up the supernet's loss was still 1.04 (it did not segment yet); with 34 of 40
    # it reached 0.74 and the derived topology's validation IoU rose above 0 once architecture steps began.
    # Stage 2 trains its op candidates from scratch, one sampled path per step; its epochs are cheap (seconds).
    # Even so, lambda = 0.1 still prunes to a near-empty network within this budget (see docs/results.md): the
    # quick preset demonstrates the pipeline; accuracy-driven searches need the paper preset on a GPU.
    # Weights: AdamW + SoftIoU+BCE, as retrain's quick preset (Adagrad 0.05 + SoftIoU, right for 1500 epochs,
    # had not started to separate targets after 20 epochs on the synthetic data).
    "quick": {"data": {"crop_size": 64, "target_prob": 0.7}, "batch_size": 12, "optimizer": "adamw", "lr": 5e-3,
              "loss": "softiou+bce", "val_images": 16,
              "stage1": {"epochs": 40, "warmup_epochs": 34, "arch_every": 2, "arch_lr": 0.05},
              "stage2": {"epochs": 30, "warmup_epochs": 22, "arch_every": 2, "arch_lr": 0.05}},
    # A search for accuracy on a 2-core CPU on the real datasets, about an hour: the halving strategy, each
    # candidate trained as the comparison benches retrain (hnanas.pipeline.budget: retrain's quick optimiser and loss,
    # AdamW 5e-3 cosine to 5e-4, weight decay 1e-4, SoftIoU+BCE, on 128-px crops in batches of 8, validated on the
    # whole validation subset), 2 epochs for every candidate, 6 for the best third, 8 (a NUDT-SIRST comparison's
    # whole budget) for the best of those, on NUDT-SIRST 50_50's 530 training images and as much training on other
    # splits (rung_images: 3, 9, 15 epochs on NUAA-SIRST's 273, a comparison's 15; with 2:8 there, 13 of 16
    # candidates of a 42 ms search still segmented nothing at the first rung). The signal is the best
    # validation IoU so far: over the 10 networks of the NUDT-SIRST search-vs-random ledger (8 epochs, 3 seeds),
    # one seed's best validation IoU after epoch 2 ranks the other seeds' mean test IoU with Kendall tau 0.50-0.63
    # (the validation loss after epoch 2: 0.02-0.20; bench/ledger_signals.py, docs/results.md).
    "cpu": {"strategy": "halving", "data": {"crop_size": 128, "target_prob": 0.7}, "batch_size": 8,
            "optimizer": "adamw", "lr": 5e-3, "weight_decay": 1e-4, "loss": "softiou+bce", "val_images": None,
            "halving": {"trials": 16, "startup_trials": 10, "min_epochs": 2, "max_epochs": 8, "eta": 3,
                        "rung_images": 530, "metric": "best_val_iou", "min_lr": 5e-4, "time_limit_min": 55}},
    # HNA-NAS's schedule for a GPU: long weight warm-up with random paths, then architecture steps every 5
    # weight steps with Adam 5e-3 (beta1 = 0); crops of 256, batch 16 (stage 1 is shorter: one op to train).
    "paper": {"data": {"crop_size": 256}, "batch_size": 16,
              "stage1": {"epochs": 400, "warmup_epochs": 300, "arch_every": 5},
              "stage2": {"epochs": 1600, "warmup_epochs": 1500, "arch_every": 5}},
}


def preset_config(name: str) -> SearchConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown search preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return layered(SearchConfig, [("defaults", {"preset": name}), (f"preset {name}", PRESETS[name])])


def resolve_config(preset: str, changes: dict, source: str = "command line") -> SearchConfig:
    """The preset's config with ``changes`` (dotted keys; :func:`hnanas.config.nest`) applied and checked."""
    return override(preset_config(preset), changes, source=source)


def stage_config(cfg: SearchConfig, stage: int) -> StageConfig:
    return cfg.stage1 if stage == 1 else cfg.stage2


__all__ = ["SearchConfig", "StageConfig", "HalvingConfig", "PRESETS", "preset_config", "resolve_config",
           "stage_config", "dataclasses"]
