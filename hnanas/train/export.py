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
from typing import Sequence

import torch

from hnanas.errors import HnanasError
from hnanas.models import build_model
from hnanas.runs import load_checkpoint
from hnanas.train.deploy import deploy_network, export_checked, onnx_metadata, reparameterize_checked
from hnanas.train.sources import deploy_size, model_from_checkpoint, read_search_run, resolve_spec, spec_name

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
