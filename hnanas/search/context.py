"""What every search strategy works with: the configuration, the run folder, the space, the latency table, the
data and its loaders, the loss and the processes (:class:`SearchContext`), built once per search run."""

from __future__ import annotations

import logging
import statistics
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from hnanas.data.bundle import build_data
from hnanas.errors import HnanasError
from hnanas.latency.table import LatencyTable, default_table_path
from hnanas.nas.genotype import sample_genotype
from hnanas.nas.space import SearchSpace, load_space
from hnanas.runs import RunDir
from hnanas.search import distributed as dd
from hnanas.search.config import SearchConfig
from hnanas.train.loaders import EpochSampler, eval_loader
from hnanas.train.optim import build_train_loss, resolve_device

log = logging.getLogger("hnanas.search")


class ShardSampler(EpochSampler):
    """The epoch's seeded permutation, this process's share of it (every ``world``-th index)."""

    def __init__(self, n: int, seed: int, d: dd.Dist):
        super().__init__(n, seed)
        self.d = d

    def __iter__(self):
        return iter(list(super().__iter__())[self.d.rank::self.d.world])

    def __len__(self) -> int:
        return len(range(self.d.rank, self.n, self.d.world))


def load_table(cfg: SearchConfig, space: SearchSpace) -> LatencyTable:
    """The latency table that prices the search: ``cfg.table``, else the shipped one of the space and device."""
    path = Path(cfg.table) if cfg.table else default_table_path(space, cfg.device, cfg.threads)
    if not path.is_file():
        raise HnanasError(f"{path}: no latency table for space {space.name} on device {cfg.device} with "
                          f"{cfg.threads} thread(s); measure one: hnanas profile --latency-device {cfg.device} --space "
                          f"{space.source or space.name} --threads {cfg.threads}  (or pass --table)")
    return LatencyTable.load(path, space=space, device=cfg.device)


REFERENCE_NETS = 200  # random networks whose mean predicted latency is the halving's default latency target


def reference_seed(seed: int, k: int) -> int:
    """The genotype seed of the ``k``-th reference network (default latency target) of search ``seed``."""
    return seed * 1000 + k


def reference_latency_ms(space: SearchSpace, table: LatencyTable, seed: int) -> float:
    """The mean predicted latency of :data:`REFERENCE_NETS` random networks (edges kept with probability 1/2, ops
    uniform): the halving strategy's default T, and what ``target_latency_scale`` scales."""
    return statistics.fmean(table.predict(sample_genotype(space, reference_seed(seed, k)), space).total_ms
                            for k in range(REFERENCE_NETS))


def resolve_target(cfg: SearchConfig) -> SearchConfig:
    """``cfg`` with ``target_latency_scale`` turned into ``target_latency_ms`` on its space and table (a config
    that gives T in ms, or no scale, is returned as it is)."""
    if cfg.target_latency_scale is None or cfg.target_latency_ms is not None:
        return cfg
    space = load_space(cfg.space)
    mean = reference_latency_ms(space, load_table(cfg, space), cfg.seed)
    log.info("target latency %.2f ms: %g x %.2f ms, the mean of %d random networks on this table",
             cfg.target_latency_scale * mean, cfg.target_latency_scale, mean, REFERENCE_NETS)
    return replace(cfg, target_latency_ms=cfg.target_latency_scale * mean)


class SearchContext:
    """The pieces of one search run that do not depend on the strategy."""

    def __init__(self, cfg: SearchConfig, run: RunDir, d: dd.Dist):
        self.cfg, self.run, self.d = cfg, run, d
        self.device: torch.device = resolve_device(cfg.train_device)
        self.space = load_space(cfg.space)
        self.table = load_table(cfg, self.space)
        self.data = build_data(cfg.data)
        self.loss_fn = build_train_loss(cfg.loss)
        self.per_rank_batch = max(cfg.batch_size // max(d.world, 1), 1)
        self.train_sampler = ShardSampler(len(self.data.train), cfg.seed, d)
        self.train_loader = DataLoader(self.data.train, batch_size=self.per_rank_batch, sampler=self.train_sampler,
                                       drop_last=True)
        val = self.data.val
        if cfg.val_images is not None and cfg.val_images < len(val):
            val = Subset(val, range(cfg.val_images))
        self.val_loader = eval_loader(val)
        self._proxy_batches: list = []  # proxy_batches' batches, loaded once

    def proxy_batches(self, n: int) -> list:
        """The first ``n`` training batches of epoch 0 as (images, masks): the same for every candidate (kept)."""
        if len(self._proxy_batches) < n:
            self.set_train_epoch(0)
            self._proxy_batches = [(b[0], b[1]) for b, _ in zip(self.train_loader, range(n))]
        return self._proxy_batches[:n]

    def set_train_epoch(self, epoch: int) -> None:
        """Training crops and order of (seed, ``epoch``)."""
        self.data.train.set_epoch(epoch)
        self.train_sampler.set_epoch(epoch)
