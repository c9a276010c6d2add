"""A bench's ledger: the small files of its output folder mirrored into a committed folder, so that a comparison
longer than one machine session accumulates over sessions instead of starting again.

A comparison of many retrains (``bench/search_vs_random.py``, ``bench/rank_quality.py``) takes hours on a 2-core
CPU; its output folder, with checkpoints and ONNX files, is not kept between sessions. What the comparison needs
to go on is small: its plan (the genotypes, fixed once), the search it compares, and the metrics of every finished
retrain. :class:`Ledger` copies exactly those (``files``: glob patterns relative to the output folder; and, of
every retrain folder matching ``retrains``, the ``retrain_files`` once its ``metrics.json`` exists, so an unfinished
retrain never enters it) into the ledger folder, and restores what the output folder lacks at the next start.
A restored retrain folder holds ``metrics.json``, so :func:`hnanas.train.budget.retrain_all` counts it done.
Only finished, self-contained files are copied, each atomically; a ledger file never overwrites a newer output
file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hnanas.errors import HnanasError
from hnanas.fileio import write_bytes

RETRAIN_FILES = ("metrics.json", "retrain_log.csv", "config.yaml")


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
