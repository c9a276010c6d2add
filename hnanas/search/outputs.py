"""What a search writes: the per-epoch log row, and at the end ``genotype.json`` (topology, ops, predicted
latency, MACs, params, the table used), ``search_curves.png``, ``arch_probs.png`` and a one-line summary."""

from __future__ import annotations

import logging

import torch

from hnanas.genotype import Genotype, make_genotype
from hnanas.network import derive
from hnanas.ops import count_macs, count_params
from hnanas.search.plots import draw_arch_probs, draw_search_curves

log = logging.getLogger("hnanas.search")

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
        "step": stage * 100_000 + epoch, "stage": stage, "epoch": epoch + 1, "train_loss": stats["loss"],
        "arch_loss": sum(arch_losses) / len(arch_losses) if arch_losses else "", "arch_steps": len(arch_losses),
        "val_iou": val.get("iou", ""), "val_niou": val.get("niou", ""), "val_pd": val.get("pd", ""),
        "val_fa": val.get("fa", ""), "expected_latency_ms": expected,
        "target_latency_ms": searcher.target_ms if searcher.target_ms is not None else "",
        "derived_latency_ms": predicted,
        "temperature": searcher.temperature() if stage == 1 else "", "entropy": searcher.entropy(),
        "lr": stats.get("lr", ""), "seconds": round(seconds, 1),
    }


def finish_search(ctx, genotype: Genotype) -> dict:
    """Write genotype.json and the figures; check the target; log and return the one-line summary."""
    cfg, space, table, run = ctx.cfg, ctx.space, ctx.table, ctx.run
    pred = table.predict(genotype, space)
    net = derive(space, genotype, deploy=True)
    shape = (space.input_channels, *space.deploy_size)
    info = {
        "predicted_latency_ms": pred.total_ms, "predicted_latency_raw_ms": pred.raw_ms,
        "latency_breakdown": pred.to_dict(), "macs": count_macs(net, shape), "params": count_params(net),
        "input_size": list(space.deploy_size),
        "table": {"path": str(table.path), "device": table.meta.get("device"), "threads": table.meta.get("threads"),
                  "date": table.meta.get("date"), "cpu_model": table.meta.get("cpu_model"),
                  "validation": table.meta.get("validation")},
        "latency_weight": cfg.latency_weight, "latency_loss": cfg.latency_loss,
        "target_latency_ms": cfg.target_latency_ms, "dataset": ctx.data.index.name, "split": ctx.data.split.name,
        "seed": cfg.seed,
    }
    rows = ctx.log.rows()
    if rows and rows[-1].get("val_iou") not in (None, ""):
        info["final_val_iou"] = float(rows[-1]["val_iou"])
    if cfg.target_latency_ms is not None:
        miss = pred.total_ms - cfg.target_latency_ms
        info["meets_target"] = miss <= 0
        if miss > 0:
            log.warning("the searched network misses the target latency by %.2f ms (%.1f %%): predicted %.2f ms vs "
                        "target %.2f ms; raise --latency-weight or search longer", miss,
                        100 * miss / cfg.target_latency_ms, pred.total_ms, cfg.target_latency_ms)
    genotype.save(run.file("genotype.json"), info=info)
    draw_search_curves(rows, run.file("search_curves.png"))
    draw_arch_probs(run.path, space, run.file("arch_probs.png"))
    summary = {"run": str(run.path), "predicted_latency_ms": pred.total_ms, "macs": info["macs"],
               "params": info["params"], "nodes": len(genotype.nodes), "val_iou": info.get("final_val_iou")}
    val = f"{100 * float(summary['val_iou']):.1f} %" if summary["val_iou"] not in (None, "") else "n/a"
    log.info("searched %s: %d nodes, %s, predicted %.2f ms on %s, %.2f GMAC, %.3f M params, val IoU %s -> %s",
             space.name, len(genotype.nodes), ", ".join(sorted(set(genotype.ops.values()))), pred.total_ms,
             table.meta.get("device"), info["macs"] / 1e9, info["params"] / 1e6, val, run.file("genotype.json"))
    return summary
