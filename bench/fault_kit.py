"""What the rows of ``bench/faults.py`` are made of: :class:`Case` (a fault ready to run) and the shared workspace
(the synthetic dataset, a latency table of the tiny space, a valid checkpoint) with the helpers that build and
check a row's files. The rows are ``bench/fault_cases.py``; ``bench/kill_cases.py`` uses the table too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass
class Case:
    """One fault, ready to run: the command, what the error must name, and the damage check."""

    argv: list[str]  # hnanas arguments
    names: str  # the error (or warning) line must contain this: the file at fault
    check: Callable[[], list[str]] = lambda: []  # what was lost or half-written (empty: nothing)
    rc: int = 2  # expected exit status
    warning: bool = False  # expected: success with a warning line naming `names` (not an error)
    during: Callable[[subprocess.Popen], None] | None = None  # acts while the command runs (disk full)
    cleanup: Callable[[], None] | None = None
    cwd: Path | None = None


TRAIN = ["--epochs", "1", "--crop-size", "32", "--batch-size", "4", "--threads", "1", "--precision", "fp32"]
SEARCH = ["--space", "tiny", "--epochs", "1", "--crop-size", "32", "--batch-size", "4", "--precision", "fp32"]


def prepare_workspace(ws: Path, hnanas) -> None:
    """The synthetic dataset (via the CLI), a tiny latency table and a valid checkpoint, shared by the rows."""
    result = hnanas(["data", "synth", "--out", str(ws / "base"), "--n", "24", "--size", "64"])
    if result.returncode != 0:
        raise RuntimeError(f"hnanas data synth failed: {result.stderr}")
    tiny_table().save(ws / "tiny_cpu_t1.csv")
    good_checkpoint(ws / "good.pt")


def tiny_table():
    """A table of the tiny space with costs from a formula (what is priced does not matter here)."""
    import onnxruntime
    import pandas as pd

    from hnanas.envinfo import cpu_identity, cpu_model
    from hnanas.latency.entries import space_entries
    from hnanas.latency.table import FORMAT, LatencyTable
    from hnanas.nas.space import load_space

    space = load_space("tiny")
    rows = [{**e.row(), "median_ms": 0.02 + 1e-6 * e.c_in * e.c_out * e.h * e.w, "p10_ms": 0.0, "p90_ms": 0.0,
             "n": 5, "in_layout": "", "out_layout": ""} for e in space_entries(space)]
    meta = {"format": FORMAT, "space": space.name, "space_hash": space.hash, "space_source": "tiny", "device": "cpu",
            "threads": 1, "onnxruntime": onnxruntime.__version__, "fixed_overhead_ms": 0.1, "network_factor": 1.0,
            "cpu_model": cpu_model(), "cpu_identity": cpu_identity()}  # "measured" here: one fault per row
    return LatencyTable(pd.DataFrame(rows), meta)


def good_checkpoint(path: Path) -> None:
    from hnanas.nas.models import build_model
    from hnanas.pipeline.sources import resolve_spec
    from hnanas.runs import save_checkpoint

    spec = resolve_spec("chain_res3", "tiny")
    model = build_model(spec)
    save_checkpoint(path, {"kind": "retrain", "epoch": 1, "model_spec": spec, "input_norm": [100.0, 30.0],
                           "model_state": {k: v.detach() for k, v in model.state_dict().items()}})


# ------------------------------------------------------------------------------------------------ helpers
def dataset(ws: Path, row: Path) -> Path:
    data = row / "data"
    shutil.copytree(ws / "base", data)
    return data


def first_train_id(data: Path) -> str:
    return (data / "train.txt").read_text().split()[0]


def retrain(data: Path, out: Path, *extra: str) -> list[str]:
    return ["retrain", "--genotype", "chain_res3", "--space", "tiny", "--dataset", str(data), "--out", str(out),
            *TRAIN, *extra]


def no_run_left(out: Path):
    """Damage check: a command that refused its input must not leave a run folder a rerun would trip over."""
    def check() -> list[str]:
        left = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        return [f"left run folder {out.name}/ with {', '.join(left)} (a rerun then needs --resume)"] if left else []
    return check


def unchanged(folder: Path):
    """Damage check: ``folder``'s files keep their bytes."""
    before = {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    def check() -> list[str]:
        after = {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        changed = [p.name for p in before if after.get(p) != before[p]] + [p.name for p in after if p not in before]
        return [f"{folder.name}/ changed: {', '.join(changed)}"] if changed else []
    return check


def edited_table(ws: Path, row: Path, meta: dict | None = None, value: str | None = None) -> Path:
    csv = row / "tiny_cpu_t1.csv"
    shutil.copy(ws / "tiny_cpu_t1.csv", csv)
    sidecar = json.loads((ws / "tiny_cpu_t1.json").read_text())
    (row / "tiny_cpu_t1.json").write_text(json.dumps({**sidecar, **(meta or {})}))
    if value is not None:  # the first entry's median_ms, edited by hand
        lines = csv.read_text().splitlines()
        header = lines[0].split(",")
        cells = lines[1].split(",")
        cells[header.index("median_ms")] = value
        csv.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    return csv


def search(table: Path, out: Path, data: Path, *extra: str) -> list[str]:
    return ["search", *SEARCH, "--table", str(table), "--dataset", str(data), "--out", str(out), *extra]


def mounted_tmpfs(folder: Path, size: str, readonly: bool = False) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True).returncode == 0


def unmount(folder: Path):
    return lambda: subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# --------------------------------------------------------------------------------------------------- rows
