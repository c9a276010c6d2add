"""``hnanas search``: one search run folder, any strategy, resumable after a kill.

:func:`run_search` sets up the processes and the run folder (``config.yaml``, ``env.json``, ``run.log``), builds the
:class:`~hnanas.search.context.SearchContext`, runs the configured strategy (``cfg.strategy``, from the registry of
:mod:`hnanas.search.strategy`) and finishes the folder the same way for every strategy
(:func:`hnanas.search.outputs.finish_search`). :func:`search_once` is how tools that need a searched network reuse,
resume or start one.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from pathlib import Path

from hnanas.config import to_dict
from hnanas.errors import HnanasError
from hnanas.fileio import read_yaml
from hnanas.runs import RunDir
from hnanas.search import distributed as dd
from hnanas.search.config import SearchConfig
from hnanas.search.context import load_table  # noqa: F401 (the benches' entry)
from hnanas.search.context import SearchContext, resolve_target
from hnanas.search.outputs import finish_search
from hnanas.search.strategies import get_strategy
from hnanas.train.optim import resolve_device

log = logging.getLogger("hnanas.search")


def run_search(cfg: SearchConfig, out: Path, *, resume: bool = False) -> dict:
    """Run (or resume) the search into ``out``; returns the final genotype's summary."""
    strategy_cls = get_strategy(cfg.strategy)  # an unknown name fails before anything is written
    device = resolve_device(cfg.train_device)
    d = dd.setup(device)
    run = RunDir.create(out, resume=resume) if d.main else RunDir(out, resumed=resume)
    dd.barrier(d)
    if not d.main:  # one process speaks for all
        logging.getLogger("hnanas").setLevel(logging.WARNING)
    with (run.exclusive() if d.main else contextlib.nullcontext()), \
            (run.discard_if_refused() if d.main else contextlib.nullcontext()), \
            (run.logging_to_file() if d.main else contextlib.nullcontext()):
        if not resume:  # a relative T in ms, recorded in config.yaml (a resumed run reads it from there)
            cfg = resolve_target(cfg)
        if d.main and (not resume or _changed(run, cfg)):  # a resumed run given a new time limit records it
            run.write_config(cfg)
        if d.main and (not resume or not run.file("env.json").is_file()):  # a run killed before writing it
            run.write_env({"torch_device": str(device), "world_size": d.world})
        ctx = SearchContext(cfg, run, d)
        log.info("search %s (%s): %s; space %s (%s); table %s", out, strategy_cls.name, ctx.data.describe(),
                 ctx.space.name, ctx.space.hash, ctx.table.path)
        strategy = strategy_cls(ctx)
        genotype = strategy.run(resume)
        if not dd.all_equal(float(zlib.crc32(genotype.describe().encode())), d):
            raise HnanasError("the processes derived different architectures; check that every process runs "
                              "the same configuration")
        summary = finish_search(ctx, genotype, strategy) if d.main else {}
    dd.barrier(d)
    return summary


def _changed(run: RunDir, cfg: SearchConfig) -> bool:
    """Whether ``cfg`` differs from the configuration in ``run``'s ``config.yaml``."""
    return not run.config_path.is_file() or to_dict(run.read_config(SearchConfig)) != to_dict(cfg)


REUSE_KEYS = ("space", "strategy", "latency_weight", "latency_loss", "target_latency_ms")


def search_once(cfg: SearchConfig, out: str | Path) -> Path:
    """The search of ``cfg`` in ``out``, for tools that need a searched network: reused when it finished,
    resumed when it was interrupted, started when missing. A folder searched with another space, strategy or
    latency setting (:data:`REUSE_KEYS`) is an error, never silently reused."""
    out = Path(out)
    cfg = resolve_target(cfg)  # a relative T compares in ms, as the folder's config.yaml records it
    if (out / "config.yaml").exists():
        done = read_yaml(out / "config.yaml") or {}
        done.setdefault("strategy", "two-stage")  # folders from before strategies were plug-ins
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
