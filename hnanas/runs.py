"""Run folders and checkpoints, used by search and retrain.

A :class:`RunDir` is one folder under ``runs/``: ``config.yaml`` (the resolved config), ``env.json`` (the
machine and versions), ``run.log`` (the run's log records), CSV logs appended row by row, and checkpoints.
Creating one over an existing non-empty folder is an error unless resuming; resuming a missing or empty one is
an error too, so a typo never starts a fresh run over old results or "resumes" nothing (a folder holding only what
a run killed before its config leaves, ``.lock`` and ``run.log``, counts as empty). The process writing a run
holds the folder's ``.lock`` (:meth:`RunDir.exclusive`), so two never write one run; taking it removes the
temporary files of writes a killed writer of the run left behind.

Checkpoints are plain dicts of tensors and Python values, written atomically (``torch.save`` to a temporary file
beside the target, then rename) and read with ``torch.load(weights_only=True)`` only. :func:`rng_state` /
:func:`restore_rng_state` capture torch (CPU and CUDA), numpy's global generator and ``random``, so a run killed
after a checkpoint continues exactly as if it had not stopped.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import logging
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch

from hnanas.config import from_dict, to_dict
from hnanas.envinfo import environment
from hnanas.errors import ConfigError, HnanasError
from hnanas.fileio import atomic_path, read_yaml, remove_dead_temps, write_json, write_text, write_yaml

CHECKPOINT_FORMAT = "hnanas-checkpoint/1"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
T = TypeVar("T")


def check_run_path(path: str | os.PathLike, *, resume: bool = False) -> None:
    """Raise unless ``path`` can hold a new run (missing or empty folder) or, with ``resume``, holds one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HnanasError(f"{path}: exists and is not a folder; choose another output folder")
    used = path.is_dir() and (any(path.iterdir()) if resume else _started(path))
    if resume and not used:
        raise HnanasError(f"{path}: nothing to resume (no such run, or an empty folder); drop --resume to "
                          f"start a new run there")
    if not resume and used:
        raise HnanasError(f"{path}: the run folder already exists; pass --resume to continue it, or choose "
                          f"another output folder (or delete this one)")


KILLED_BEFORE_START = (".lock", "run.log")  # what a run killed before writing its config.yaml can leave


def _started(path: Path) -> bool:
    """Whether ``path`` holds a run: anything but the lock, the log and temporary files of atomic writes, which is
    all a run killed before its first file (``config.yaml``) leaves, so a new run may take the folder over."""
    return any(p.name not in KILLED_BEFORE_START and not (p.name.startswith(".") and p.name.endswith(".tmp"))
               for p in path.iterdir())


class RunDir:
    """One run folder. Use :meth:`create` to open it (fresh, or to resume)."""

    def __init__(self, path: str | os.PathLike, resumed: bool = False):
        self.path = Path(path)
        self.resumed = resumed
        self.made_folder = False  # create() made the folder (it did not exist before)

    @classmethod
    def create(cls, path: str | os.PathLike, *, resume: bool = False) -> "RunDir":
        """Open ``path`` for a new run (it must not exist or be empty) or, with ``resume``, an existing one."""
        path = Path(path)
        check_run_path(path, resume=resume)
        run = cls(path, resumed=resume)
        run.made_folder = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        return run

    @contextlib.contextmanager
    def discard_if_refused(self) -> Iterator[None]:
        """For a new run: when the block fails on bad input (:class:`HnanasError`, e.g. an unreadable image or a
        broken latency table) before any checkpoint (``*.pt``) was written, remove what the run wrote (and the
        folder, if :meth:`create` made it), so the same command runs again once the input is fixed instead of
        asking for ``--resume``. A run folder is empty when a new run opens it, so everything in it is the run's
        own. Use it inside :meth:`exclusive` (only the lock holder cleans up); resumed runs are left alone."""
        try:
            yield
        except HnanasError:
            if not self.resumed and self.path.is_dir() and not any(self.path.rglob("*.pt")):
                for item in self.path.iterdir():
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
                if self.made_folder:
                    self.path.rmdir()
            raise

    # ------------------------------------------------------------------------------------- files
    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.file("config.yaml")

    def write_config(self, cfg: Any) -> Path:
        """Write the resolved config (a dataclass, or a plain dict) as ``config.yaml``."""
        return write_yaml(self.config_path, to_dict(cfg))

    def read_config(self, cls: type[T]) -> T:
        """The run's ``config.yaml`` as dataclass ``cls`` (unknown keys are errors naming the file)."""
        if not self.config_path.is_file():
            raise ConfigError(f"{self.config_path}: missing; this folder was not written by hnanas (or the run "
                              f"was killed before it started); start a new run without --resume")
        try:
            return from_dict(cls, read_yaml(self.config_path), source=str(self.config_path))
        except ConfigError as exc:
            raise ConfigError(f"{exc}; is this folder another kind of run (a search, not a retrain, or the other way "
                              f"round)? pass the run's own folder, or start a new run elsewhere") from None

    def write_env(self, extra: dict | None = None) -> Path:
        """``env.json``: versions, host, CPU, memory, date (and ``extra``, e.g. the torch device)."""
        return write_json(self.file("env.json"), environment(extra))

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the folder's lock (``.lock``, an advisory ``flock``) while the block runs: a second process writing
        the same run (a retrain started twice, a bench's leftover worker) fails at once instead of interleaving
        logs and checkpoints. The lock goes with the process, however it ends."""
        self.path.mkdir(parents=True, exist_ok=True)
        f = open(self.file(".lock"), "a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise HnanasError(f"{self.path}: {holder} is writing this run; wait for it to end or stop it "
                                  f"first") from None
            f.seek(0)
            f.truncate()
            f.write(f"process {os.getpid()}")
            f.flush()
            remove_dead_temps(self.path, recursive=True)  # half-written files of a killed writer of this run
            yield
        finally:
            f.close()

    @contextlib.contextmanager
    def logging_to_file(self, logger: str = "hnanas") -> Iterator[Path]:
        """Copy the records of ``logger`` (INFO and up) into ``run.log`` (appended) while the block runs."""
        handler = logging.FileHandler(self.file("run.log"), mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.setLevel(logging.INFO)
        target = logging.getLogger(logger)
        old_level = target.level
        if target.getEffectiveLevel() > logging.INFO:
            target.setLevel(logging.INFO)
        target.addHandler(handler)
        try:
            yield self.file("run.log")
        finally:
            target.removeHandler(handler)
            target.setLevel(old_level)
            handler.close()

    def note(self, message: str) -> None:
        """Append ``message`` to ``run.log`` only (e.g. the final summary the CLI prints itself)."""
        with open(self.file("run.log"), "a", encoding="utf-8") as f:
            f.write(f"{message}\n")

    def csv_log(self, name: str, fields: Sequence[str], step_field: str = "epoch") -> "CsvLog":
        return CsvLog(self.file(name), fields, step_field)

    # ------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, state: dict, name: str = "last.pt") -> Path:
        return save_checkpoint(self.file(name), state)

    def load_checkpoint(self, name: str = "last.pt") -> dict:
        return load_checkpoint(self.file(name))

    def has_checkpoint(self, name: str = "last.pt") -> bool:
        return self.file(name).is_file()


class CsvLog:
    """A CSV file with a fixed header, appended one row at a time (flushed, so a kill loses at most the row
    being written). :meth:`truncate_after` drops rows logged after a checkpoint's step on resume."""

    def __init__(self, path: Path, fields: Sequence[str], step_field: str = "epoch"):
        self.path, self.fields, self.step_field = Path(path), list(fields), step_field
        if step_field not in self.fields:
            raise ValueError(f"step field {step_field!r} is not one of the CSV fields {self.fields}")
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), [])
            if header != self.fields:
                raise HnanasError(f"{self.path}: its columns {header} are not this run's {self.fields}; the run "
                                  f"folder was written by another version; start a new run")

    def rows(self) -> list[dict[str, str]]:
        return read_csv_rows(self.path)

    def append(self, row: dict) -> None:
        unknown = set(row) - set(self.fields)
        if unknown:
            raise ValueError(f"{self.path}: unknown columns {sorted(unknown)}")
        new = not self.path.is_file() or self.path.stat().st_size == 0
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=self.fields)
                if new:
                    writer.writeheader()
                writer.writerow({k: _csv_value(row.get(k)) for k in self.fields})
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # a full disk: name the log (a torn last row is dropped on resume)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    def truncate_after(self, step: int) -> int:
        """Keep rows whose step is ``<= step`` (and drop a torn last line); returns how many were dropped."""
        return self.keep(lambda r: _is_int(r.get(self.step_field)) and int(r[self.step_field]) <= step)

    def keep(self, wanted: Callable[[dict[str, str]], bool]) -> int:
        """Keep the rows ``wanted`` accepts (rewriting the file); returns how many were dropped."""
        rows = self.rows()
        kept = [r for r in rows if wanted(r)]
        if self.path.is_file():
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
            write_text(self.path, buffer.getvalue())
        return len(rows) - len(kept)


def read_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a CSV log as dicts of strings (empty when the file does not exist)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _is_int(text: Any) -> bool:
    try:
        int(text)
        return True
    except (TypeError, ValueError):
        return False


def _csv_value(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else ("" if value is None else value)


# ------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` ``state`` (plus its format tag) to a temporary file beside ``path``, then rename; a full disk
    is an ``OSError`` naming ``path`` (the CLI's one-line error), and ``path`` keeps its previous content."""
    path = Path(path)
    buffer = io.BytesIO()  # serialised first: torch.save on a full disk fails with an obscure RuntimeError
    torch.save(plain({"format": CHECKPOINT_FORMAT, **state}), buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return path


def plain(value: Any) -> Any:
    """``value`` with only the types ``torch.load(weights_only=True)`` accepts: tensors, dicts, lists, tuples and
    exact str/int/float/bool/None (``str`` subclasses such as ``torch.__version__`` and numpy scalars become
    their plain Python values)."""
    if isinstance(value, torch.Tensor) or value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [plain(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint (weights_only loading would refuse it)")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint written by :func:`save_checkpoint`, read with ``weights_only=True``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise HnanasError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4" notes about a foreign file: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated files, foreign pickles, ... all mean "not usable"
        raise HnanasError(f"{path}: not an hnanas checkpoint, or a damaged one ({_load_failure(exc)}); it was not "
                          f"unpickled (only tensors and plain values are read); pass a best.pt or last.pt "
                          f"written by hnanas retrain") from None
    if not isinstance(state, dict) or "format" not in state:
        raise HnanasError(f"{path}: not an hnanas checkpoint (no format tag); pass a best.pt or last.pt written "
                          f"by hnanas retrain")
    if state["format"] != CHECKPOINT_FORMAT:
        raise HnanasError(f"{path}: checkpoint format {state['format']!r}, this hnanas reads {CHECKPOINT_FORMAT!r}; "
                          f"it was written by another hnanas version: use that version, or retrain with this one")
    return state


def _load_failure(exc: Exception) -> str:
    """The informative line of a ``torch.load`` failure (e.g. ``Unsupported global: GLOBAL builtins.open``)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for key in ("Unsupported global", "Unsupported operand", "Unpickler error", "failed finding central directory",
                "invalid load key", "Ran out of input"):
        hit = [ln for ln in lines if key in ln]
        if hit:  # the first sentence: torch's advice after it (allow-listing globals) is not for our users
            return hit[0][hit[0].find(key):].split(". ")[0][:160]
    return (lines[-1] if lines else type(exc).__name__)[:160]


def rng_state() -> dict:
    """The global random states a training step may draw from: torch (CPU, CUDA), numpy, ``random``."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Undo :func:`rng_state`'s capture (CUDA states only where this machine has the same GPUs)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"], "has_gauss": n["has_gauss"], "gauss": n["gauss"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]}})
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
