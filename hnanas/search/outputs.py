"""What every search writes at the end, whatever its strategy: ``genotype.json`` (topology, ops, predicted
latency, MACs, params, the table used, the strategy and its own entries), the strategy's figures and a one-line
summary."""

from __future__ import annotations

import logging

from hnanas.nas.genotype import Genotype
from hnanas.nas.network import derive
from hnanas.ops import count_macs, count_params

log = logging.getLogger("hnanas.search")

def finish_search(ctx, genotype: Genotype, strategy) -> dict:
    """Draw the strategy's figures, then write genotype.json (with the strategy's own info); check the target; log and
    return the one-line summary."""
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
        "seed": cfg.seed, "strategy": strategy.name, **strategy.info(),
    }
    if cfg.target_latency_ms is not None:
        miss = pred.total_ms - cfg.target_latency_ms
        info["meets_target"] = miss <= 0
        if miss > 0:
            log.warning("the searched network misses the target latency by %.2f ms (%.1f %%): predicted %.2f ms vs "
                        "target %.2f ms; raise --latency-weight or search longer", miss,
                        100 * miss / cfg.target_latency_ms, pred.total_ms, cfg.target_latency_ms)
    strategy.figures()  # before genotype.json, the mark of a finished search: a kill between them redraws them
    genotype.save(run.file("genotype.json"), info=info)
    summary = {"run": str(run.path), "predicted_latency_ms": pred.total_ms, "macs": info["macs"],
               "params": info["params"], "nodes": len(genotype.nodes), "val_iou": info.get("final_val_iou")}
    val = f"{100 * float(summary['val_iou']):.1f} %" if summary["val_iou"] not in (None, "") else "n/a"
    if info.get("best_val_iou") is not None:  # halving ranks by the best epoch, not the last
        val += f" (best {100 * info['best_val_iou']:.1f} %)"
    log.info("searched %s: %d nodes, %s, predicted %.2f ms on %s, %.2f GMAC, %.3f M params, val IoU %s -> %s",
             space.name, len(genotype.nodes), ", ".join(sorted(set(genotype.ops.values()))), pred.total_ms,
             table.meta.get("device"), info["macs"] / 1e9, info["params"] / 1e6, val, run.file("genotype.json"))
    return summary
