"""A bench's ledger: the small files of its output folder mirrored into a committed folder, so that a comparison
longer than one machine session accumulates over sessions instead of starting again.

A comparison of many retrains (``bench/search_vs_random.py``, ``bench/rank_quality.py``) takes hours on a 2-core
CPU; its output folder, with checkpoints and ONNX files, is not kept between sessions. What the comparison needs
to go on is small: its plan (the genotypes, fixed once), the search it compares, and the metrics of every finished
retrain. :class:`Ledger` copies exactly those (``files``: glob patterns relative to the output folder; and, of
every retrain folder matching ``retrains``, the ``retrain_files`` once its ``metrics.json`` exists, so an unfinished
retrain never enters it) into the ledger folder, and restores what the output folder lacks at the next start.
A restored retrain folder holds ``metrics.json``, so :func:`hnanas.pipeline.budget.retrain_all` counts it done.
Only finished, self-contained files are copied, each atomically; a ledger file never overwrites a newer output
file. :func:`reuse_retrains` borrows another ledger's finished retrains of the same networks (two comparisons at
one latency point share their random networks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

from hnanas.config import to_dict
from hnanas.errors import HnanasError
from hnanas.fileio import read_yaml, write_bytes
from hnanas.metrics import THRESHOLD_GRID_V1
from hnanas.nas.genotype import Genotype, load_genotype
from hnanas.nas.space import SearchSpace
from hnanas.pipeline.presets import OptimConfig, TrainConfig

RETRAIN_FILES = ("metrics.json", "retrain_log.csv", "config.yaml")
# what an optim or train key missing from an older config.yaml meant
OPTIM_DEFAULTS, TRAIN_DEFAULTS = asdict(OptimConfig()), asdict(TrainConfig())


@dataclass(frozen=True)
class Ledger:
    """``folder`` (committed, e.g. ``bench/data/<bench>_<dataset>/``) mirrors the small files of ``out``."""

    folder: Path
    out: Path
    files: tuple[str, ...]  # glob patterns under out of plan and summary files
    retrains: str = "nets/*/seed*"  # glob of retrain folders under out
    retrain_files: tuple[str, ...] = RETRAIN_FILES  # what a finished retrain keeps

    def _pairs(self, root: Path) -> list[Path]:
        """The ledger's files (relative paths) as found under ``root``."""
        found = {p for pattern in self.files for p in root.glob(pattern) if p.is_file()}
        for run in root.glob(self.retrains):
            if (run / "metrics.json").is_file():
                found.update(run / name for name in self.retrain_files if (run / name).is_file())
        return sorted(p.relative_to(root) for p in found)

    def restore(self) -> int:
        """Copy every ledger file the output folder lacks into it; returns how many."""
        if not self.folder.exists():
            return 0
        if not self.folder.is_dir():
            raise HnanasError(f"{self.folder}: the ledger must be a folder; pass another --ledger")
        n = 0
        for rel in self._pairs(self.folder):
            if not (self.out / rel).exists():
                write_bytes(self.out / rel, (self.folder / rel).read_bytes())
                n += 1
        return n

    def save(self) -> int:
        """Copy every ledger file of the output folder that is new or changed into the ledger; returns how many."""
        n = 0
        for rel in self._pairs(self.out):
            src, dst = self.out / rel, self.folder / rel
            data = src.read_bytes()
            if not dst.exists() or dst.read_bytes() != data:
                write_bytes(dst, data)
                n += 1
        return n


def same_budget(mine: Mapping, theirs: Mapping) -> bool:
    """Whether two retrain configs (as written to ``config.yaml``) train the same way (optimiser, loop, seed,
    device setting) on the same data: the dataset compared by folder name, since a ledger moves between machines
    whose data lie elsewhere; the thread count left out (it changes speed, not results); an optimiser or loop key
    that a config written before the key existed lacks counts as its default, as that run trained with it -- but
    ``train.threshold_grid`` as the grid of that time (:data:`hnanas.metrics.THRESHOLD_GRID_V1`), and only where
    ``train.select_threshold`` chose among it."""
    def pick(c: Mapping) -> tuple:
        train = {**TRAIN_DEFAULTS, "threshold_grid": THRESHOLD_GRID_V1, **c["train"]}
        del train["threads"]
        grid = tuple(train.pop("threshold_grid"))  # a list as config.yaml holds it
        if train["select_threshold"]:
            train["threshold_grid"] = grid
        return ({**OPTIM_DEFAULTS, **c["optim"]}, train, {**c["data"], "dataset": Path(c["data"]["dataset"]).name})
    return pick(mine) == pick(theirs)


def reuse_retrains(other: Path, jobs: Sequence[tuple], genotypes: Mapping[str, Genotype], space: SearchSpace,
                   genotype_files: Mapping[str, str] | None = None) -> tuple[list[Path], list[Path]]:
    """Copy ``other`` ledger's finished retrains into the jobs' folders where the network is the same (its
    genotype, by name, equals ``other/<genotype_files[name]>``, else ``other/genotypes/<name>.json``) and so are
    budget, data and seed
    (:func:`same_budget`); a folder that already holds a retrain of its own, finished or begun, is left alone.
    ``jobs``: (RetrainConfig, OUT/nets/<name>/seed<k>). Returns (the folders filled now, every folder holding
    ``other``'s retrain: filled now or by an earlier call)."""
    filled, reused = [], []
    for cfg, out in jobs:
        name, theirs = out.parent.name, other / "nets" / out.parent.name / out.name
        mine, kept = genotypes.get(name), other / (genotype_files or {}).get(name, f"genotypes/{name}.json")
        if not kept.is_file():  # a ledger whose plan copied every genotype, the searched one too
            kept = other / "genotypes" / f"{name}.json"
        if mine is None or not kept.is_file() or not all((theirs / f).is_file() for f in RETRAIN_FILES):
            continue
        if load_genotype(kept, space).nodes != mine.nodes:
            continue
        if (out / "metrics.json").exists():
            if (out / "metrics.json").read_bytes() == (theirs / "metrics.json").read_bytes():
                reused.append(out)
            continue
        if (out / "model.json").exists() or not same_budget(to_dict(cfg), read_yaml(theirs / "config.yaml")):
            continue
        for f in RETRAIN_FILES:
            write_bytes(out / f, (theirs / f).read_bytes())
        filled.append(out)
        reused.append(out)
    return filled, reused
