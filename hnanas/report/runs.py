"""The runs a report covers: finding them (paths and globs), reading what each folder holds, naming them.

A *run* is one of:

- a search run folder (``genotype.json``, ``search_log.csv``, ...), possibly with its retrain in ``retrain/``;
- a retrain folder (``config.yaml`` with a ``model`` section, ``metrics.json``, ``latency.json``, ...), e.g. a
  baseline retrained with ``--out DIR``; when it trained a search run's genotype, that search run is found too;
- a folder holding a ``retrain/`` folder but no search (``hnanas retrain --model dnanet --run runs/dnanet``).

A run is a *baseline* when it was retrained from ``--model`` or a named genotype rather than from a search (a
genotype file counts as searched; the search it came from is found when that file matches the trained network).
Nothing is invented: a value a run's files do not hold stays ``None``. A folder that holds none of these but
whose sub-folders are runs (a sweep's study folder, ``runs/``) stands for those runs.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from hnanas.errors import HnanasError
from hnanas.fileio import read_json, read_yaml

STATUS_RETRAINED = "retrained"
STATUS_NO_RETRAIN = "no retrain"
STATUS_RETRAIN_UNFINISHED = "retrain unfinished"
STATUS_SEARCH_UNFINISHED = "search unfinished"


@dataclass
class RunRecord:
    """What one run's files say. ``genotype`` is the search's genotype.json (with its ``info`` block)."""

    path: Path  # the folder the run was found at
    name: str  # short unique name used in tables and figure file names
    baseline: bool  # retrained from --model or a named genotype, not from a search
    status: str  # retrained | no retrain | retrain unfinished | search unfinished
    search_path: Path | None = None  # the search run folder, if any
    retrain_path: Path | None = None  # the retrain folder, if any
    genotype: dict | None = None  # the search's genotype.json
    search_config: dict | None = None  # the search's config.yaml
    retrain_config: dict | None = None  # the retrain's config.yaml
    model_spec: dict | None = None  # the retrain's model.json (a nested spec embeds space and genotype)
    metrics: dict | None = None  # the retrain's metrics.json (test metrics, val_iou, params, MACs, budget)
    latency: dict | None = None  # the retrain's latency.json: {device: {measured_ms, predicted_ms, threads, ...}}

    @property
    def info(self) -> dict:
        return dict((self.genotype or {}).get("info") or {})

    @property
    def kind(self) -> str:
        return "baseline" if self.baseline else "searched"

    @property
    def genotype_name(self) -> str:
        """The network: a baseline's name, or the genotype's name and space with its node count and ops."""
        genotype = (self.model_spec or {}).get("genotype") if (self.model_spec or {}).get("kind") == "nested" \
            else self.genotype
        if genotype:
            nodes = genotype.get("nodes") or {}
            ops = sorted({str(v.get("op")) for v in nodes.values() if isinstance(v, dict)})
            shown = "+".join(ops[:4]) + (f"+{len(ops) - 4} more" if len(ops) > 4 else "")
            return f"{genotype.get('name') or 'genotype'} ({genotype.get('space')}): {len(nodes)} nodes, {shown}"
        if self.metrics and self.metrics.get("model"):
            return str(self.metrics["model"])
        if self.model_spec:
            from hnanas.pipeline.sources import spec_name  # imports torch: only for runs that have a spec

            return spec_name(self.model_spec)
        model = (self.retrain_config or {}).get("model") or {}
        return str(model.get("baseline") or model.get("genotype") or "?")

    def file(self, where: str, name: str) -> Path | None:
        """``name`` in the search (``where="search"``) or retrain folder, when it exists."""
        base = self.search_path if where == "search" else self.retrain_path
        return base / name if base is not None and (base / name).is_file() else None


def _read_optional_json(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


def _read_optional_yaml(path: Path) -> Any:
    data = read_yaml(path) if path.is_file() else None
    return data if isinstance(data, dict) else None


def is_search_run(path: Path) -> bool:
    return (path / "genotype.json").is_file() or (path / "search_log.csv").is_file()


def is_retrain_run(path: Path) -> bool:
    cfg = path / "config.yaml"
    if not cfg.is_file() or not ((path / "model.json").is_file() or (path / "metrics.json").is_file()):
        return False
    data = _read_optional_yaml(cfg)
    return bool(data) and isinstance(data.get("model"), dict)


def is_run(path: Path) -> bool:
    return path.is_dir() and (is_search_run(path) or is_retrain_run(path) or is_retrain_run(path / "retrain"))


def _same_genotype(genotype: Any, spec: Any) -> bool:
    """Whether a search's genotype.json is the network a retrain's model spec describes."""
    if not isinstance(genotype, dict) or not isinstance(spec, dict) or spec.get("kind") != "nested":
        return False
    trained = spec.get("genotype") or {}
    return trained.get("nodes") == genotype.get("nodes") and trained.get("space_hash") == genotype.get("space_hash")


def _trained_search(retrain: Path, retrain_config: dict | None, spec: dict | None) -> Path | None:
    """The search run whose genotype a retrain trained: the folder around it, or the one its ``model.genotype``
    file names (relative paths are tried against the retrain folder's ancestors too, since they were relative
    to the directory the retrain ran in); checked by content when model.json is there."""
    genotype = ((retrain_config or {}).get("model") or {}).get("genotype")
    if not genotype:
        return None
    candidates = [retrain.parent]
    named = Path(str(genotype))
    if named.name == "genotype.json":
        candidates.append(named.parent)
        if not named.is_absolute():
            candidates += [a / named.parent for a in retrain.resolve().parents]
    for folder in candidates:
        if not ((folder / "genotype.json").is_file() and (folder / "search_log.csv").is_file()):
            continue
        if spec is None or _same_genotype(_read_optional_json(folder / "genotype.json"), spec):
            return folder
    return None


def is_baseline(retrain_config: dict) -> bool:
    """Retrained from ``--model`` or a named genotype (``dnanet_res3``, ``random:K``), not a genotype file."""
    model = retrain_config.get("model") or {}
    if model.get("baseline"):
        return True
    genotype = model.get("genotype")
    return not genotype or Path(str(genotype)).suffix != ".json"


def _resolved(path: Path | None) -> Path | None:
    return path.resolve() if path is not None else None


def load_run(path: str | os.PathLike) -> RunRecord:
    """Read one run folder (see the module docstring); anything else is an error naming the folder."""
    path = Path(path)
    if not path.is_dir():
        raise HnanasError(f"{path}: no such folder; pass search or retrain run folders (or quoted globs)")
    if is_search_run(path):
        search, retrain = path, path / "retrain" if (path / "retrain").is_dir() else None
    elif is_retrain_run(path):
        search, retrain = None, path
    elif is_retrain_run(path / "retrain"):
        search, retrain = None, path / "retrain"
    else:
        raise HnanasError(f"{path}: not a run folder (no genotype.json or search_log.csv of a search, no "
                          f"config.yaml + metrics.json of a retrain); pass runs written by hnanas search/retrain")
    rec = RunRecord(path=path, name=path.name, baseline=False, status=STATUS_NO_RETRAIN, search_path=search,
                    retrain_path=retrain)
    if search is not None:
        rec.genotype = _read_optional_json(search / "genotype.json")
        rec.search_config = _read_optional_yaml(search / "config.yaml")
    if retrain is not None:
        rec.retrain_config = _read_optional_yaml(retrain / "config.yaml")
        rec.model_spec = _read_optional_json(retrain / "model.json")
        rec.metrics = _read_optional_json(retrain / "metrics.json")
        rec.latency = _read_optional_json(retrain / "latency.json")
    if retrain is not None and rec.retrain_config is not None:
        trained_search = _trained_search(retrain, rec.retrain_config, rec.model_spec)
        rec.baseline = is_baseline(rec.retrain_config)
        if _resolved(trained_search) != _resolved(search):  # search columns only of the search it trained
            rec.search_path = search = trained_search
            rec.genotype = _read_optional_json(search / "genotype.json") if search else None
            rec.search_config = _read_optional_yaml(search / "config.yaml") if search else None
    if rec.metrics is not None:
        rec.status = STATUS_RETRAINED
    elif retrain is not None and any(retrain.iterdir()):
        rec.status = STATUS_RETRAIN_UNFINISHED
    elif search is not None and rec.genotype is None:
        rec.status = STATUS_SEARCH_UNFINISHED
    return rec


def expand_run_paths(patterns: Iterable[str | os.PathLike]) -> list[Path]:
    """Paths and globs (expanded here too, so quoted globs work) -> run folders, in order, without repeats.
    A folder that is not a run but holds runs (one level down) stands for them."""
    out: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            raise HnanasError(f"{text}: matches no file or folder")
        for match in matches:
            path = Path(match)
            if is_run(path):
                found = [path]
            elif path.is_dir():
                found = sorted(p for p in path.iterdir() if is_run(p))
                if not found and glob.has_magic(text):
                    continue  # a glob may match non-run folders beside runs
                if not found:
                    load_run(path)  # raises the "not a run folder" error
            elif glob.has_magic(text):
                continue
            else:
                raise HnanasError(f"{path}: no such run folder; pass search or retrain run folders (or quoted "
                                  f"globs)")
            for p in found:
                if p.resolve() not in {q.resolve() for q in out}:
                    out.append(p)
    if not out:
        raise HnanasError(f"no run folder among {', '.join(map(str, patterns))}")
    return out


def _display_name(path: Path) -> str:
    return path.parent.name if path.name == "retrain" and path.parent.name else path.name


def find_runs(patterns: Iterable[str | os.PathLike]) -> list[RunRecord]:
    """Load the runs named by ``patterns``; names are the folder names, made unique with their parents."""
    runs = [load_run(p) for p in expand_run_paths(patterns)]
    names = [_display_name(r.path) for r in runs]
    if len(set(names)) != len(names):
        common = Path(os.path.commonpath([str(r.path.resolve()) for r in runs]))
        names = [str(r.path.resolve().relative_to(common)) or r.path.name for r in runs]
    for run, name in zip(runs, names):
        run.name = name
    return runs
