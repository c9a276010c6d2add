"""Which CPU a table was measured on, and this machine's own tables.

A latency table belongs to one CPU: the same marketing name ("AMD EPYC") covers CPUs whose kernels differ by
tens of percent, so tables record :func:`hnanas.envinfo.cpu_identity` (vendor, family, model, stepping, vector
extensions). For the ``cpu`` device, :func:`hnanas.latency.table.default_table_path` prefers a table measured
on this CPU with this onnxruntime: a full profile in the table folders, else the quick transfer
(``hnanas profile quick``) cached per CPU under :func:`machine_tables_dir`. When it has to price with a table
from another CPU, :func:`warn_other_machine` says so, once per table, with the command that fixes it
(:func:`warn_other_runtime` likewise for another onnxruntime version).
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from pathlib import Path

from hnanas.envinfo import cpu_identity

log = logging.getLogger(__name__)
MACHINE_DEVICES = ("cpu",)  # devices that run on the CPU of the machine hnanas runs on
_warned: set[str] = set()


@lru_cache(maxsize=1)
def this_cpu() -> str:
    return cpu_identity()


def ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


def cache_dir() -> Path:
    """hnanas's per-user cache: ``$HNANAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hnanas``, else ``~/.cache/hnanas``."""
    if os.environ.get("HNANAS_CACHE_DIR"):
        return Path(os.environ["HNANAS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hnanas"


def machine_slug() -> str:
    """A folder name for this CPU and onnxruntime, e.g. ``authenticamd-family-25-model-1-stepping-1-avx2_ort-1.32.0``."""
    cpu = re.sub(r"[^a-z0-9]+", "-", this_cpu().lower()).strip("-")
    return f"{cpu}_ort-{ort_version()}"


def machine_tables_dir() -> Path:
    return cache_dir() / "latency_tables" / machine_slug()


def machine_table_path(space_name: str, device: str, threads: int) -> Path:
    """Where ``hnanas profile quick`` caches this machine's table of a space."""
    return machine_tables_dir() / f"{space_name}_{device}_t{threads}.csv"


def measured_here(meta: dict) -> bool:
    """Whether a table's sidecar says it was measured on this CPU with this onnxruntime."""
    return meta.get("cpu_identity") == this_cpu() and meta.get("onnxruntime") == ort_version()


def describe(meta: dict) -> str:
    return f"{meta.get('cpu_model', '?')} ({meta.get('cpu_identity') or 'CPU details not recorded'})"


def _first_time(path: Path, what: str) -> bool:
    """Whether ``what`` is being said of ``path`` for the first time in this process (then it is now)."""
    key = f"{what}:{path}"
    if key in _warned:
        return False
    _warned.add(key)
    return True


def warn_other_runtime(path: Path, meta: dict) -> None:
    """Once per table and process: a table measured with another onnxruntime version may price differently."""
    measured_with = meta.get("onnxruntime")
    if measured_with and measured_with != ort_version() and _first_time(path, "onnxruntime"):
        log.warning("warning: %s: measured with onnxruntime %s, this is %s; latencies may differ (re-measure with "
                    "`hnanas profile` for this version's)", path, measured_with, ort_version())


def warn_other_machine(path: Path, meta: dict) -> None:
    """Once per table and process: a ``cpu`` table measured on another CPU prices this one only roughly."""
    if meta.get("device") not in MACHINE_DEVICES or meta.get("cpu_identity") == this_cpu():
        return
    if not _first_time(path, "cpu"):
        return
    space, threads = meta.get("space", "SPACE"), meta.get("threads", 1)
    log.warning("warning: %s was measured on %s; this machine is %s: its predictions can be off by tens of percent here. "
                "Price this machine: hnanas profile quick --space %s --threads %s (a few minutes; or a full "
                "`hnanas profile`, about 10)", path, describe(meta), this_cpu(), space, threads)
