"""``hnanas export``: the deploy-form ONNX model of a run, checked against torch.

The source is a retrain checkpoint (``RUN/best.pt`` of a retrain folder, or ``RUN/retrain/best.pt``, or an
explicit ``checkpoint``): its weights, re-parameterised, behind the training input normalisation. Without one,
a search run's ``genotype.json`` is exported with freshly initialised weights (useful for latency checks, not
accuracy; the model then expects normalised input and says so in its metadata). The export is static at the
deployment size (the space's, 256x256 for baselines) unless ``dynamic`` makes H and W symbolic; it is checked
against torch in ONNX Runtime on random input at that size (and at a second size when dynamic).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from hnanas.envinfo import cpu_model
from hnanas.errors import HnanasError
from hnanas.fileio import read_json, write_json
from hnanas.nas.models import build_model
from hnanas.pipeline.deploy import (deploy_network, export_checked, measure_latency, onnx_metadata,
                                 reparameterize_checked)
from hnanas.pipeline.sources import deploy_size, model_from_checkpoint, read_search_run, resolve_spec, spec_name
from hnanas.runs import load_checkpoint

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """Where the model went and what it is."""

    path: Path
    source: Path  # the checkpoint or genotype file exported
    model: str  # human name of the network
    size: tuple[int, int]  # H, W of the export (the example size when dynamic)
    dynamic: bool
    trained: bool
    bytes: int

    def summary(self) -> str:
        shape = "dynamic H x W" if self.dynamic else f"{self.size[0]}x{self.size[1]}"
        weights = "trained weights" if self.trained else "UNTRAINED weights (no retrain checkpoint)"
        return (f"exported {self.model} ({weights}, {shape}) from {self.source} to {self.path} "
                f"({self.bytes / 1e6:.2f} MB); matches torch in ONNX Runtime")


def find_source(run: str | Path) -> Path:
    """The checkpoint (or, failing that, the genotype) a run folder exports."""
    run = Path(run)
    for candidate in (run / "best.pt", run / "retrain" / "best.pt", run / "genotype.json"):
        if candidate.is_file():
            return candidate
    raise HnanasError(f"{run}: no best.pt, retrain/best.pt or genotype.json; retrain the run first "
                      f"(hnanas retrain --run {run}) or pass --checkpoint FILE")


def export_run(run: str | Path | None = None, *, checkpoint: str | Path | None = None, out: str | Path | None = None,
               dynamic: bool = False, size: Sequence[int] | None = None) -> ExportResult:
    """Export the deploy form of ``checkpoint`` (or of :func:`find_source` ``(run)``) to ``out`` (default:
    ``export.onnx`` / ``export_dynamic.onnx`` beside the source)."""
    if checkpoint is None and run is None:
        raise HnanasError("export: pass --run DIR or --checkpoint FILE")
    source = Path(checkpoint) if checkpoint is not None else find_source(run)
    if source.name == "genotype.json":
        search = read_search_run(source.parent)
        spec = resolve_spec(str(search.genotype_file), search.space)
        with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
            torch.manual_seed(0)
            model = build_model(spec).eval()
        input_norm, trained = None, False
        log.warning("warning: %s has no retrain checkpoint; exporting freshly initialised weights", source.parent)
    else:
        state = load_checkpoint(source)
        spec, input_norm, trained = dict(state["model_spec"]), state.get("input_norm"), True
        model = model_from_checkpoint(state)
    h, w = (int(size[0]), int(size[1])) if size else deploy_size(spec)
    generator = torch.Generator().manual_seed(0)
    deploy = reparameterize_checked(model, torch.randn(1, 1, h, w, generator=generator))
    net = deploy_network(deploy, input_norm)
    scale = 255.0 if input_norm else 1.0  # raw pixels when the model normalises itself
    example = torch.rand(1, 1, h, w, generator=generator) * scale
    extra = {} if trained else {"hnanas.untrained": "true"}
    target = Path(out) if out else source.parent / ("export_dynamic.onnx" if dynamic else "export.onnx")
    data = export_checked(net, example, onnx_metadata(spec, input_norm, extra), dynamic=dynamic, path=target)
    return ExportResult(target, source, spec_name(spec), (h, w), dynamic, trained, len(data))


def spec_export(spec: Mapping, input_norm: Sequence[float] = (0.0, 1.0)) -> bytes:
    """The deploy-form ONNX model of the network of ``spec`` with freshly initialised (seeded) weights, exported as
    :func:`export_run` exports a trained one: fused, behind an input normalisation, static at the deployment
    size, checked against torch."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(dict(spec)).eval()
    h, w = deploy_size(spec)
    generator = torch.Generator().manual_seed(0)
    deploy = reparameterize_checked(model, torch.randn(1, 1, h, w, generator=generator))
    net = deploy_network(deploy, input_norm)
    return export_checked(net, torch.rand(1, 1, h, w, generator=generator) * 255,
                          onnx_metadata(spec, input_norm, {"hnanas.untrained": "true"}))


def spec_latency(spec: Mapping, *, devices: Sequence[str] = ("cpu",), threads: int | None = 1,
                 sessions: int = 3) -> dict:
    """:func:`~hnanas.pipeline.deploy.measure_latency` of :func:`spec_export`. The graph, and so the work, is a
    trained network's (the weights' values do not change it; ``bench/trained_vs_fresh_latency.py`` measures
    that), so a bench can time every network of a comparison at once, on a quiet machine, before (or without)
    their checkpoints."""
    return measure_latency(spec_export(spec), spec, devices=list(devices), threads=threads, sessions=sessions)


def time_networks(specs: Mapping[str, Mapping], cache_file: str | Path, *,
                  report: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """``{name: measure_latency's cpu entry + cpu_model}`` of every network of ``specs`` (cpu, 1 thread, median of
    3 fresh sessions; :func:`spec_latency`), cached in ``cache_file``. Timings belong to one CPU model: a cache
    measured on another one is measured again whole, so a comparison never mixes two machines' times.
    ``report(name, timed)`` is called after each new measurement."""
    cache_file, cpu = Path(cache_file), cpu_model()
    cache = read_json(cache_file) if cache_file.exists() else {}
    if any(not isinstance(v, dict) or v.get("cpu_model") != cpu for v in cache.values()):
        log.warning("%s was timed on another CPU model; timing every network again on %s", cache_file, cpu)
        cache = {}
    for name, spec in specs.items():
        if name in cache:
            continue
        cache[name] = {**spec_latency(spec)["cpu"], "cpu_model": cpu}
        write_json(cache_file, cache)
        if report is not None:
            report(name, cache[name])
    return {name: cache[name] for name in specs}
