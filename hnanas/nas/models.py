"""Model specs: every network hnanas trains is described by a small JSON-serialisable spec.

Checkpoints store the spec, so ``retrain``, ``evaluate`` and ``export`` rebuild a model from a checkpoint alone.
Kinds: ``nested`` (a derived network of a search space: the spec embeds the whole space and the genotype, so a
later edit of the space file cannot change an old checkpoint) and the baselines registered with
:func:`hnanas.nas.model_kinds.register_model` (DNANet, a RepISD-Net-style ECB U-Net, ...).

A spec may carry ``input_norm: [mean, std]``: the model then normalises raw pixel values itself, so an exported
ONNX model takes the image as stored and evaluation on another dataset uses the training statistics.

Models return logits ``N x 1 x H x W``. In training mode a model with deep supervision may return a list of
logits (the last is the main output); :func:`main_output` picks it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

import hnanas.nas.baselines  # noqa: F401  (registers the baseline kinds)
from hnanas.config import check_probability
from hnanas.errors import ConfigError
from hnanas.nas.genotype import genotype_from_dict
from hnanas.nas.model_kinds import builder_of, named_specs, register_model
from hnanas.nas.network import derive
from hnanas.nas.space import space_from_dict


def named_models() -> dict[str, dict]:
    """Baseline specs loadable by name."""
    return named_specs()


class Normalized(nn.Module):
    """``(x - mean) / std`` before ``model`` (constants, exported into ONNX)."""

    def __init__(self, model: nn.Module, mean: float, std: float):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)


def nested_spec(space, genotype, input_norm: tuple[float, float] | None = None) -> dict:
    spec: dict[str, Any] = {"kind": "nested", "space": space.to_dict(), "genotype": genotype.to_dict()}
    if input_norm is not None:
        spec["input_norm"] = [float(input_norm[0]), float(input_norm[1])]
    return spec


@register_model("nested")
def _build_nested(spec: dict, deploy: bool) -> nn.Module:
    space = space_from_dict(spec["space"], source="model spec")
    genotype = genotype_from_dict(spec["genotype"], space, source="model spec")
    return derive(space, genotype, deploy=deploy)


def build_model(spec: dict, *, deploy: bool = False) -> nn.Module:
    """Build the network of ``spec`` (training form, or directly in deploy form), normalising its input when the
    spec has ``input_norm``."""
    kind = spec.get("kind") if isinstance(spec, dict) else None
    model = builder_of(kind)(spec, deploy)
    norm = spec.get("input_norm")
    return Normalized(model, norm[0], norm[1]) if norm else model


def set_output_prior(model: nn.Module, prior: float | None) -> None:
    """Start ``model`` predicting ``prior`` everywhere: the bias of each layer that outputs logits becomes
    log(prior / (1 - prior)) (RetinaNet's prior initialisation). Freshly initialised, a network outputs p = 0.5 on
    every pixel; the first steps of SoftIoU+BCE then push every pixel down at once, and some networks end up
    predicting background everywhere for several epochs, or for good (docs/results.md, "Retrains that never
    segment"). Other weights are untouched and no random numbers are drawn, so the rest of the initialisation
    is the same as without it. ``None`` (no prior configured) leaves the model as it is."""
    if check_probability(prior, "the output prior") is None:
        return
    inner = model.model if isinstance(model, Normalized) else model
    convs = getattr(inner, "output_convs", None)
    if convs is None:
        raise ConfigError(f"{type(inner).__name__} does not say which layers output logits (no output_convs()); "
                          f"leave the output prior unset for it")
    with torch.no_grad():
        for conv in convs():
            conv.bias.fill_(math.log(prior / (1.0 - prior)))


def main_output(out: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The main logits of a model's output (the last of a deep-supervision list)."""
    return out[-1] if isinstance(out, (list, tuple)) else out
