"""The default strategy, ``two-stage``: differentiable topology search, then op search, with the latency term.

Stage 1 trains the topology supernet (all candidate edges behind gates, the stage-1 op everywhere) and derives the
topology; stage 2 trains the op supernet on it and derives the genotype. Each epoch: weight steps on train crops
(the shared loop), an architecture step every ``arch_every`` weight steps once the warm-up is over (validation
crops: never the test split), validation IoU of the currently derived architecture, the expected latency and the
table's prediction for the derived network, a row in ``search_log.csv``, an architecture snapshot and a
checkpoint (everything needed to continue exactly: weights, optimizers, schedule, sampling generator, RNGs).
"""

from __future__ import annotations

import logging
import time

import torch
from torch.utils.data import DataLoader

from hnanas.data.torch_data import TrainDataset
from hnanas.fileio import write_json
from hnanas.latency.expected import EdgeLatencyModel, OpLatencyModel
from hnanas.nas.genotype import Genotype, genotype_from_dict, make_genotype
from hnanas.nas.models import set_output_prior
from hnanas.search import distributed as dd
from hnanas.search.config import stage_config
from hnanas.search.context import SearchContext, ShardSampler
from hnanas.search.plots import draw_arch_probs, draw_search_curves
from hnanas.search.searchers import EdgeSearcher, OpSearcher
from hnanas.search.strategy import Strategy, register_strategy
from hnanas.search.supernet import OpSupernet, TopologySupernet, edge_gates
from hnanas.train.epochs import SEARCH_KEYS, Trainee, run_epochs
from hnanas.train.fastpath import FP32, TrainPath, choose_path, path_named
from hnanas.train.loop import evaluate, train_epoch
from hnanas.train.optim import build_optimizer, build_scheduler, warmup_steps

log = logging.getLogger("hnanas.search")
STATE = "search_state.pt"


def epoch_key(stage: int, epoch: int) -> int:
    """One number per (stage, epoch): the log's step column and the data streams' epoch."""
    return stage * 100_000 + epoch


def arch_pass_key(epoch: int, k: int) -> int:
    """The data streams' epoch of the k-th pass over the validation crops during architecture steps of ``epoch``
    (distinct while an epoch needs fewer than 1000 passes)."""
    return epoch * 1000 + k


def weight_seed(seed: int, stage: int) -> int:
    """The torch seed of a stage's supernet weights: a resumed run rebuilds the same ones."""
    return seed * 10 + stage


def sampling_seed(seed: int, stage: int) -> int:
    """The seed of a stage's searcher generator (gates and paths sampled during weight and architecture steps)."""
    return seed * 100 + stage


LOG_FIELDS = ["step", "stage", "epoch", "train_loss", "arch_loss", "arch_steps", "val_iou", "val_niou", "val_pd",
              "val_fa", "expected_latency_ms", "target_latency_ms", "derived_latency_ms", "temperature", "entropy",
              "lr", "seconds"]


def _with_ops(ctx, derived: Genotype, stage: int) -> Genotype:
    """Stage 1 derives a topology with the stage-1 op; price it with the op stage 1 assumed (mean -> stage1_op)."""
    op = ctx.cfg.stage1_latency_op
    if stage == 2 or op == "mean":
        return derived
    return make_genotype(ctx.space, derived.inputs, op, name=derived.name)


def stage_row(ctx, searcher, stage: int, epoch: int, stats: dict, arch_losses: list, val: dict, derived: Genotype,
              seconds: float) -> dict:
    with torch.no_grad():
        expected = float(searcher.expected_latency())
    predicted = ctx.table.predict(_with_ops(ctx, derived, stage), ctx.space).total_ms
    return {
        "step": epoch_key(stage, epoch), "stage": stage, "epoch": epoch + 1, "train_loss": stats["loss"],
        "arch_loss": sum(arch_losses) / len(arch_losses) if arch_losses else "", "arch_steps": len(arch_losses),
        "val_iou": val.get("iou", ""), "val_niou": val.get("niou", ""), "val_pd": val.get("pd", ""),
        "val_fa": val.get("fa", ""), "expected_latency_ms": expected,
        "target_latency_ms": searcher.target_ms if searcher.target_ms is not None else "",
        "derived_latency_ms": predicted,
        "temperature": searcher.temperature() if stage == 1 else "", "entropy": searcher.entropy(),
        "lr": stats.get("lr", ""), "seconds": round(seconds, 1),
    }


@register_strategy
class TwoStage(Strategy):
    """Stage 1 (edges) then stage 2 (ops), each a supernet trained with architecture steps."""

    name = "two-stage"
    summary = "differentiable topology search, then op search (ProxylessNAS paths or a mixture), latency in the loss"

    def __init__(self, ctx: SearchContext):
        super().__init__(ctx)
        cfg, d = ctx.cfg, ctx.d
        self.arch_set = TrainDataset(ctx.data.store, ctx.data.val.ids, ctx.data.stats,
                                     crop_size=cfg.data.crop_size, target_prob=cfg.data.target_prob, augment=False,
                                     seed=cfg.seed + 1)
        self.arch_sampler = ShardSampler(len(self.arch_set), cfg.seed + 1, d)
        self.arch_loader = DataLoader(self.arch_set, batch_size=ctx.per_rank_batch, sampler=self.arch_sampler,
                                      drop_last=False)
        self.log = ctx.run.csv_log("search_log.csv", LOG_FIELDS, step_field="step")

    # ------------------------------------------------------------------------------------------- the run
    def run(self, resume: bool) -> Genotype:
        ctx = self.ctx
        state = ctx.run.load_checkpoint(STATE) if resume and ctx.run.has_checkpoint(STATE) else None
        if state is not None:
            self.log.truncate_after(epoch_key(int(state["stage"]), int(state["epoch"])))
        elif resume:  # killed before its first checkpoint (maybe after logging that epoch): it starts over
            self.log.truncate_after(-1)
        if state is None or state["stage"] == 1:
            topology, _ = self.run_stage(1, state=state)
            if ctx.d.main:
                topology.save(ctx.run.file("stage1_genotype.json"))
            state = None
        else:
            topology = genotype_from_dict(state["topology"], ctx.space, source=str(ctx.run.file(STATE)))
        genotype, _ = self.run_stage(2, topology, state=state)
        return genotype

    def info(self) -> dict:
        rows = self.log.rows()
        if rows and rows[-1].get("val_iou") not in (None, ""):
            return {"final_val_iou": float(rows[-1]["val_iou"])}
        return {}

    def figures(self) -> None:
        draw_search_curves(self.log.rows(), self.ctx.run.file("search_curves.png"))
        draw_arch_probs(self.ctx.run.path, self.ctx.space, self.ctx.run.file("arch_probs.png"))

    # ------------------------------------------------------------------------------------------ pieces
    def arch_batches(self, epoch: int):
        """Endless validation crops for architecture steps, in an order fixed by (seed, epoch)."""
        k = 0
        while True:
            self.arch_set.set_epoch(arch_pass_key(epoch, k))
            self.arch_sampler.set_epoch(arch_pass_key(epoch, k))
            for batch in self.arch_loader:
                yield batch[0].to(self.ctx.device), batch[1].to(self.ctx.device)
            k += 1

    def build(self, stage: int, topology=None):
        """The supernet and searcher of ``stage`` (weights seeded, so a resumed run rebuilds the same)."""
        ctx, cfg = self.ctx, self.ctx.cfg
        torch.manual_seed(weight_seed(cfg.seed, stage))
        if stage == 1:
            net = TopologySupernet(ctx.space)
            latency = EdgeLatencyModel(ctx.table, ctx.space, op=cfg.stage1_latency_op)
            cls = EdgeSearcher
        else:
            net = OpSupernet(ctx.space, topology, mode=cfg.stage2.mode)
            latency = OpLatencyModel(ctx.table, ctx.space, topology, net.node_ops)
            cls = OpSearcher
        net.to(ctx.device)
        set_output_prior(net, cfg.output_prior)
        gen = torch.Generator().manual_seed(sampling_seed(cfg.seed, stage))
        searcher = cls(net, latency, cfg, stage_config(cfg, stage), ctx.loss_fn, gen, ctx.d)
        steps = stage_config(cfg, stage).epochs * max(len(ctx.train_loader), 1)
        opt = build_optimizer(net.weight_parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
        sched = build_scheduler(opt, "cosine", steps, min_lr=min(1e-5, cfg.lr),
                                warmup=warmup_steps(cfg.lr_warmup_epochs, len(ctx.train_loader)))
        return net, searcher, dd.AveragingOptimizer(opt, ctx.d), sched

    def derived_forward(self, searcher):
        """Run the supernet as the currently derived architecture (hard gates / most probable ops)."""
        if searcher.stage == 1:
            topo = searcher.derive()
            gates = {n: g for n, g in edge_gates(self.ctx.space, topo.inputs).items() if n in searcher.supernet.arch}
            return topo, lambda model, x: model(x, gates)
        g = searcher.derive()
        paths = {n: [searcher.supernet.node_ops[n].index(op)] for n, op in g.ops.items()}
        return g, lambda model, x: model(x, paths)

    def train_path(self, net, searcher, stage: int, start: int, state: dict | None) -> TrainPath:
        """The stage's train path (in the supernet's memory format): the resumed state's, else the config's,
        ``auto`` timed on the stage's first batch with the searcher's sampling generator put back afterwards."""
        ctx = self.ctx
        if state is not None:  # states written before train paths existed ran on fp32
            path = path_named(state.get("train_path", "fp32"))
        elif ctx.cfg.precision == "auto" and ctx.d.world > 1:  # every process must train the same way
            path = FP32
        else:
            ctx.set_train_epoch(epoch_key(stage, start))
            generator = searcher.generator.get_state()
            path = choose_path(ctx.cfg.precision, net, ctx.train_loader, ctx.loss_fn,
                               forward=searcher.weight_forward, log=log.info)
            searcher.generator.set_state(generator)
        log.info("stage %d train path: %s", stage, path.name)
        path.prepare(net)
        return path

    def run_stage(self, stage: int, topology=None, state: dict | None = None):
        ctx = self.ctx
        cfg, scfg = ctx.cfg, stage_config(ctx.cfg, stage)
        net, searcher, opt, sched = self.build(stage, topology)
        trainee = Trainee(net, opt, sched, keys=SEARCH_KEYS)
        start = 0
        if state is not None:
            searcher.load_state_dict(state["searcher"])
            searcher.generator.set_state(state["generator"])
            trainee.restore(state)
            start = state["epoch"] + 1
        path = self.train_path(net, searcher, stage, start, state)

        def one_epoch(epoch: int) -> dict | None:
            t0 = time.time()
            searcher.epoch = epoch
            ctx.set_train_epoch(epoch_key(stage, epoch))
            batches = self.arch_batches(epoch_key(stage, epoch))
            arch_losses = []

            def after_step(i: int) -> None:
                if searcher.searching and (i + 1) % scfg.arch_every == 0:
                    arch_losses.append(searcher.step(*next(batches)))

            stats = train_epoch(net, ctx.train_loader, ctx.loss_fn, opt, forward=searcher.weight_forward,
                                after_step=after_step, scheduler=sched, desc=f"stage {stage} epoch {epoch + 1}",
                                path=path)
            dd.broadcast_buffers(net, ctx.d)
            derived, forward = self.derived_forward(searcher)
            val = evaluate(net, ctx.val_loader, forward=forward, desc="validate") if ctx.d.main else {}
            row = stage_row(ctx, searcher, stage, epoch, stats, arch_losses, val, derived, time.time() - t0)
            if not ctx.d.main:
                return None
            self.log.append(row)
            write_json(ctx.run.file(f"arch/stage{stage}_epoch{epoch + 1:03d}.json"), searcher.snapshot())
            said[epoch] = (f"stage {stage} epoch {epoch + 1}/{scfg.epochs}: loss {stats['loss']:.4f}, val IoU "
                           + (f"{100 * row['val_iou']:.1f} %" if row["val_iou"] != "" else "n/a")
                           + f", E[latency] {row['expected_latency_ms']:.2f} ms, derived "
                           f"{row['derived_latency_ms']:.2f} ms, entropy {row['entropy']:.3f} ({row['seconds']:.0f} s)")
            return {"stage": stage, "epoch": epoch, "topology": topology.to_dict() if topology else None,
                    "searcher": searcher.state_dict(), "generator": searcher.generator.get_state(),
                    "config_preset": cfg.preset, "train_path": path.name}

        def save(epoch: int, entries: dict) -> None:
            ctx.run.save_checkpoint(entries, STATE)
            log.info("%s", said.pop(epoch))  # after the save: a logged epoch is never redone by a resume

        said: dict[int, str] = {}

        run_epochs(trainee, start, scfg.epochs, one_epoch, save, after=lambda: dd.barrier(ctx.d))
        return searcher.derive(name="stage1" if stage == 1 else "searched"), net
