"""Where a network to train or export comes from: a search run folder, a genotype and space, a named baseline,
or a checkpoint — each resolved to a model spec (:mod:`hnanas.nas.models`).

A *search run folder* holds ``genotype.json`` and ``config.yaml``; its ``space`` entry (a space name or file, or
the space mapping itself) and its ``data`` section give the retrain's defaults. Only the data keys that define
*which* data to use (dataset, data root, split, validation carve, mismatch policy) are taken from it; crops and
augmentation come from the retrain preset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from hnanas.errors import ConfigError, HnanasError
from hnanas.fileio import read_json, read_yaml, write_yaml
from hnanas.nas.genotype import Genotype, genotype_from_dict, load_genotype
from hnanas.nas.models import build_model, named_models, nested_spec
from hnanas.nas.space import SearchSpace, load_space, space_from_dict

log = logging.getLogger(__name__)

SEARCH_DATA_KEYS = ("dataset", "data_root", "split", "val_fraction", "seed", "on_mismatch", "cache_images")
DEFAULT_SIZE = (256, 256)  # deployment size of networks that have no search space (baselines)


@dataclass
class SearchRun:
    """What a search run folder says about its result: the genotype file, its space, its data defaults."""

    path: Path
    genotype_file: Path
    space: str  # a space name or file that load_space() accepts
    data: dict = field(default_factory=dict)  # DataConfig keys taken from the search's config


def read_search_run(path: str | Path) -> SearchRun:
    """Read ``path/genotype.json`` and ``path/config.yaml``. A space embedded in config.yaml as a mapping is
    written beside it as ``path/space.yaml`` (once), so the retrain config can name it by file."""
    path = Path(path)
    genotype_file = path / "genotype.json"
    if not genotype_file.is_file():
        raise HnanasError(f"{path}: no genotype.json (not a finished search run); pass --genotype NAME|FILE "
                          f"--space SPACE, or --model NAME for a baseline")
    genotype_data = read_json(genotype_file)
    config: Mapping[str, Any] = {}
    if (path / "config.yaml").is_file():
        config = read_yaml(path / "config.yaml") or {}
    space_entry = config.get("space") if isinstance(config, Mapping) else None
    if isinstance(space_entry, Mapping) and "nodes" not in space_entry:
        space_entry = space_entry.get("file") or space_entry.get("path") or space_entry.get("name")
    if isinstance(space_entry, Mapping):
        space_from_dict(dict(space_entry), source=f"{path / 'config.yaml'}: space")  # validate before writing
        target = path / "space.yaml"
        if not target.is_file() or read_yaml(target) != dict(space_entry):
            write_yaml(target, dict(space_entry))
        space = str(target)
    elif isinstance(space_entry, str):
        space = space_entry
    elif isinstance(genotype_data, Mapping) and genotype_data.get("space"):
        space = str(genotype_data["space"])
    else:
        raise ConfigError(f"{path}: neither config.yaml nor genotype.json names the search space; pass --space")
    data_section = config.get("data") if isinstance(config, Mapping) else None
    data = {k: v for k, v in (data_section or {}).items() if k in SEARCH_DATA_KEYS}
    return SearchRun(path, genotype_file, space, data)


def search_run_source(run: str | Path, *, space: str | None = None, dataset: str | None = None
                      ) -> tuple[dict, dict]:
    """What retraining a search run's network starts from (``retrain --run``, sweeps, benches): the model (its
    genotype file, absolute, and space; ``space`` overrides) and the base config (the search's data keys; on
    another ``dataset`` the search's split is dropped: splits belong to their dataset)."""
    search = read_search_run(run)
    model = {"genotype": str(search.genotype_file.resolve()), "space": space or search.space}
    data = dict(search.data)
    if dataset and dataset != data.get("dataset"):
        data.pop("split", None)
    return model, {"data": data}


def resolve_spec(genotype: str | None = None, space: str | None = None, baseline: str | None = None) -> dict:
    """The model spec (no input normalisation) of a genotype in a space, or of a named baseline / spec file."""
    if baseline is not None:
        return baseline_spec(baseline)
    if genotype is None or space is None:
        raise ConfigError("a genotype needs its search space (--space)")
    loaded = load_space(space)
    return nested_spec(loaded, load_genotype(genotype, loaded))


def baseline_spec(name_or_file: str) -> dict:
    """A named baseline's spec, or a model-spec JSON file (``{"kind": ..., ...}``)."""
    named = named_models()
    if name_or_file in named:
        return dict(named[name_or_file])
    path = Path(name_or_file)
    if path.suffix == ".json" or path.is_file():
        spec = read_json(path)
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ConfigError(f"{path}: not a model spec (a JSON object with a \"kind\")")
        spec.pop("input_norm", None)
        return spec
    raise ConfigError(f"unknown model {name_or_file!r}; named baselines: {', '.join(sorted(named)) or '(none)'}, "
                      f"or pass a model-spec JSON file")


def spec_space_genotype(spec: Mapping) -> tuple[SearchSpace | None, Genotype | None]:
    """The space and genotype of a ``nested`` spec; ``(None, None)`` for a baseline."""
    if spec.get("kind") != "nested":
        return None, None
    space = space_from_dict(spec["space"], source="model spec")
    return space, genotype_from_dict(spec["genotype"], space, source="model spec")


def deploy_size(spec: Mapping) -> tuple[int, int]:
    """The input size a network is deployed (and timed) at: its space's deploy size, else 256x256."""
    space, _ = spec_space_genotype(spec)
    return tuple(space.deploy_size) if space is not None else DEFAULT_SIZE  # type: ignore[return-value]


def spec_name(spec: Mapping) -> str:
    """A short human name: the genotype's name (or 'nested') and space, or the baseline kind."""
    if spec.get("kind") == "nested":
        return f"{spec['genotype'].get('name') or 'genotype'} ({spec['space'].get('name')})"
    return str(spec.get("name") or spec.get("kind"))


def model_from_checkpoint(state: Mapping, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained network of a checkpoint (training form, eval mode, without input normalisation)."""
    if "model_spec" not in state or "model_state" not in state:
        raise HnanasError("checkpoint has no model (model_spec/model_state missing); use a retrain best.pt")
    model = build_model(dict(state["model_spec"]))
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        raise HnanasError(f"checkpoint weights do not fit its model spec ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval()
