"""``hnanas search``: the whole two-stage search in one run folder, resumable after a kill.

Stage 1 trains the topology supernet (all candidate edges behind gates, the stage-1 op everywhere) and derives the
topology; stage 2 trains the op supernet on it and derives the genotype. Each epoch: weight steps on train crops
(the shared loop), an architecture step every ``arch_every`` weight steps once the warm-up is over (validation
crops: never the test split), validation IoU of the currently derived architecture, the expected latency and the
table's prediction for the derived network, a row in ``search_log.csv``, an architecture snapshot and a
checkpoint (everything needed to continue exactly: weights, optimizers, schedule, sampling generator, RNGs).
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from hnanas.data.bundle import build_data
from hnanas.data.torch_data import TrainDataset
from hnanas.errors import HnanasError
from hnanas.fileio import read_yaml, write_json
from hnanas.genotype import genotype_from_dict
from hnanas.latency.expected import EdgeLatencyModel, OpLatencyModel
from hnanas.latency.table import LatencyTable, default_table_path
from hnanas.runs import RunDir, restore_rng_state, rng_state
from hnanas.search import distributed as dd
from hnanas.search.config import SearchConfig, stage_config
from hnanas.search.outputs import LOG_FIELDS, finish_search, stage_row
from hnanas.search.searchers import EdgeSearcher, OpSearcher
from hnanas.space import load_space
from hnanas.supernet import OpSupernet, TopologySupernet, edge_gates
from hnanas.train.fastpath import FP32, TrainPath, choose_path, path_named
from hnanas.train.loaders import EpochSampler, eval_loader
from hnanas.train.loop import evaluate, train_epoch
from hnanas.train.optim import build_optimizer, build_scheduler, build_train_loss, resolve_device

log = logging.getLogger("hnanas.search")
STATE = "search_state.pt"


class ShardSampler(EpochSampler):
    """The epoch's seeded permutation, this process's share of it (every ``world``-th index)."""

    def __init__(self, n: int, seed: int, d: dd.Dist):
        super().__init__(n, seed)
        self.d = d

    def __iter__(self):
        return iter(list(super().__iter__())[self.d.rank::self.d.world])

    def __len__(self) -> int:
        return len(range(self.d.rank, self.n, self.d.world))


def load_table(cfg: SearchConfig, space) -> LatencyTable:
    path = Path(cfg.table) if cfg.table else default_table_path(space, cfg.device, cfg.threads)
    if not path.is_file():
        raise HnanasError(f"{path}: no latency table for space {space.name} on device {cfg.device} with "
                          f"{cfg.threads} thread(s); measure one: hnanas profile --device {cfg.device} --space "
                          f"{space.source or space.name} --threads {cfg.threads}  (or pass --table)")
    return LatencyTable.load(path, space=space, device=cfg.device)


class SearchRun:
    """State shared by both stages of one search."""

    def __init__(self, cfg: SearchConfig, run: RunDir, d: dd.Dist):
        self.cfg, self.run, self.d = cfg, run, d
        self.device = resolve_device(cfg.train_device)
        self.space = load_space(cfg.space)
        self.table = load_table(cfg, self.space)
        self.data = build_data(cfg.data)
        self.loss_fn = build_train_loss(cfg.loss)
        per_rank = max(cfg.batch_size // max(d.world, 1), 1)
        self.train_sampler = ShardSampler(len(self.data.train), cfg.seed, d)
        self.train_loader = DataLoader(self.data.train, batch_size=per_rank, sampler=self.train_sampler,
                                       drop_last=True)
        arch_set = TrainDataset(self.data.store, self.data.val.ids, self.data.stats,
                                crop_size=cfg.data.crop_size, target_prob=cfg.data.target_prob, augment=False,
                                seed=cfg.seed + 1)
        self.arch_set = arch_set
        self.arch_sampler = ShardSampler(len(arch_set), cfg.seed + 1, d)
        self.arch_loader = DataLoader(arch_set, batch_size=per_rank, sampler=self.arch_sampler, drop_last=False)
        val = self.data.val
        if cfg.val_images is not None and cfg.val_images < len(val):
            val = Subset(val, range(cfg.val_images))
        self.val_loader = eval_loader(val)
        self.log = run.csv_log("search_log.csv", LOG_FIELDS, step_field="step")

    def arch_batches(self, epoch: int):
        """Endless validation crops for architecture steps, in an order fixed by (seed, epoch)."""
        k = 0
        while True:
            self.arch_set.set_epoch(epoch * 1000 + k)
            self.arch_sampler.set_epoch(epoch * 1000 + k)
            for batch in self.arch_loader:
                yield batch[0].to(self.device), batch[1].to(self.device)
            k += 1

    def build(self, stage: int, topology=None):
        """The supernet and searcher of ``stage`` (weights seeded, so a resumed run rebuilds the same)."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 10 + stage)
        if stage == 1:
            net = TopologySupernet(self.space)
            latency = EdgeLatencyModel(self.table, self.space, op=cfg.stage1_latency_op)
            cls = EdgeSearcher
        else:
            net = OpSupernet(self.space, topology, mode=cfg.stage2.mode)
            latency = OpLatencyModel(self.table, self.space, topology, net.node_ops)
            cls = OpSearcher
        net.to(self.device)
        gen = torch.Generator().manual_seed(cfg.seed * 100 + stage)
        searcher = cls(net, latency, cfg, stage_config(cfg, stage), self.loss_fn, gen, self.d)
        scfg = stage_config(cfg, stage)
        steps = scfg.epochs * max(len(self.train_loader), 1)
        opt = build_optimizer(net.weight_parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
        sched = build_scheduler(opt, "cosine", steps, min_lr=min(1e-5, cfg.lr))
        return net, searcher, dd.AveragingOptimizer(opt, self.d), sched

    def derived_forward(self, searcher):
        """Run the supernet as the currently derived architecture (hard gates / most probable ops)."""
        if searcher.stage == 1:
            topo = searcher.derive()
            gates = {n: g for n, g in edge_gates(self.space, topo.inputs).items() if n in searcher.supernet.arch}
            return topo, lambda model, x: model(x, gates)
        g = searcher.derive()
        paths = {n: [searcher.supernet.node_ops[n].index(op)] for n, op in g.ops.items()}
        return g, lambda model, x: model(x, paths)

    def train_path(self, net, searcher, stage: int, start: int, state: dict | None) -> TrainPath:
        """The stage's train path (in the supernet's memory format): the resumed state's, else the config's,
        ``auto`` timed on the stage's first batch with the searcher's sampling generator put back afterwards."""
        if state is not None:  # states written before train paths existed ran on fp32
            path = path_named(state.get("train_path", "fp32"))
        elif self.cfg.precision == "auto" and self.d.world > 1:  # every process must train the same way
            path = FP32
        else:
            self.data.train.set_epoch(stage * 100_000 + start)
            self.train_sampler.set_epoch(stage * 100_000 + start)
            generator = searcher.generator.get_state()
            path = choose_path(self.cfg.precision, net, self.train_loader, self.loss_fn,
                               forward=searcher.weight_forward, log=log.info)
            searcher.generator.set_state(generator)
        log.info("stage %d train path: %s", stage, path.name)
        path.prepare(net)
        return path

    def run_stage(self, stage: int, topology=None, state: dict | None = None):
        cfg, scfg = self.cfg, stage_config(self.cfg, stage)
        net, searcher, opt, sched = self.build(stage, topology)
        start = 0
        if state is not None:
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            searcher.load_state_dict(state["searcher"])
            searcher.generator.set_state(state["generator"])
            restore_rng_state(state["rng"])
            start = state["epoch"] + 1
        path = self.train_path(net, searcher, stage, start, state)
        for epoch in range(start, scfg.epochs):
            t0 = time.time()
            searcher.epoch = epoch
            self.data.train.set_epoch(stage * 100_000 + epoch)
            self.train_sampler.set_epoch(stage * 100_000 + epoch)
            batches = self.arch_batches(stage * 100_000 + epoch)
            arch_losses = []

            def after_step(i: int) -> None:
                if searcher.searching and (i + 1) % scfg.arch_every == 0:
                    arch_losses.append(searcher.step(*next(batches)))

            stats = train_epoch(net, self.train_loader, self.loss_fn, opt, forward=searcher.weight_forward,
                                after_step=after_step, scheduler=sched, desc=f"stage {stage} epoch {epoch + 1}",
                                path=path)
            dd.broadcast_buffers(net, self.d)
            derived, forward = self.derived_forward(searcher)
            val = evaluate(net, self.val_loader, forward=forward, desc="validate") if self.d.main else {}
            row = stage_row(self, searcher, stage, epoch, stats, arch_losses, val, derived, time.time() - t0)
            if self.d.main:
                self.log.append(row)
                write_json(self.run.file(f"arch/stage{stage}_epoch{epoch + 1:03d}.json"), searcher.snapshot())
                self.run.save_checkpoint({
                    "stage": stage, "epoch": epoch, "topology": topology.to_dict() if topology else None,
                    "model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "searcher": searcher.state_dict(), "generator": searcher.generator.get_state(),
                    "rng": rng_state(), "config_preset": cfg.preset, "train_path": path.name}, STATE)
                log.info("stage %d epoch %d/%d: loss %.4f, val IoU %s, E[latency] %.2f ms, derived %.2f ms, "
                         "entropy %.3f (%.0f s)", stage, epoch + 1, scfg.epochs, stats["loss"],
                         f"{100 * row['val_iou']:.1f} %" if row["val_iou"] != "" else "n/a",
                         row["expected_latency_ms"], row["derived_latency_ms"], row["entropy"], row["seconds"])
            dd.barrier(self.d)
        return searcher.derive(name="stage1" if stage == 1 else "searched"), net


def run_search(cfg: SearchConfig, out: Path, *, resume: bool = False) -> dict:
    """Run (or resume) the search into ``out``; returns the final genotype's summary."""
    device = resolve_device(cfg.train_device)
    d = dd.setup(device)
    run = RunDir.create(out, resume=resume) if d.main else RunDir(out, resumed=resume)
    dd.barrier(d)
    if not d.main:  # one process speaks for all
        logging.getLogger("hnanas").setLevel(logging.WARNING)
    with run.logging_to_file() if d.main else contextlib.nullcontext():
        if d.main and not resume:
            run.write_config(cfg)
            run.write_env({"torch_device": str(device), "world_size": d.world})
        ctx = SearchRun(cfg, run, d)
        log.info("search %s: %s; space %s (%s); table %s", out, ctx.data.describe(), ctx.space.name,
                 ctx.space.hash, ctx.table.path)
        state = run.load_checkpoint(STATE) if resume and run.has_checkpoint(STATE) else None
        if state is not None:
            ctx.log.truncate_after(int(state["stage"]) * 100_000 + int(state["epoch"]))
        topology = None
        if state is None or state["stage"] == 1:
            topology, _ = ctx.run_stage(1, state=state)
            if d.main:
                topology.save(run.file("stage1_genotype.json"))
            state = None
        else:
            topology = genotype_from_dict(state["topology"], ctx.space, source=str(run.file(STATE)))
        genotype, net = ctx.run_stage(2, topology, state=state)
        if not dd.all_equal(float(zlib.crc32(genotype.describe().encode())), d):
            raise HnanasError("the processes derived different architectures; check that every process runs "
                              "the same configuration")
        summary = finish_search(ctx, genotype) if d.main else {}
    dd.barrier(d)
    return summary


REUSE_KEYS = ("space", "latency_weight", "latency_loss", "target_latency_ms")


def search_once(cfg: SearchConfig, out: str | Path) -> Path:
    """The search of ``cfg`` in ``out``, for tools that need a searched network: reused when it finished,
    resumed when it was interrupted, started when missing. A folder searched with another space or latency
    setting (:data:`REUSE_KEYS`) is an error, never silently reused."""
    out = Path(out)
    if (out / "config.yaml").exists():
        done = read_yaml(out / "config.yaml") or {}
        wanted = {k: getattr(cfg, k) for k in REUSE_KEYS}
        found = {k: done.get(k) for k in REUSE_KEYS}
        if found != wanted:
            raise HnanasError(f"{out} was searched with {found}, not {wanted}; pass the same options, or another "
                              f"output folder")
        if not (out / "genotype.json").exists():
            run_search(cfg, out, resume=True)
        return out
    run_search(cfg, out)
    return out
