"""Train form vs deploy form: do they compute the same function?

The check follows RepVGG's ``verify.py``, but asserts instead of printing: every BN's running statistics and
affine parameters are randomised (fresh BNs have mean 0, var 1, γ 1, β 0, under which a fusion that ignores the
statistics still looks right), every other parameter is redrawn so that each branch contributes at a
comparable scale (ECBSR initialises its mask scales at 1e-3, which would hide a broken Sobel branch), and both
forms run in eval mode on the same input, in float32 and float64.

Error measure: ``max_rel_err = max|deploy − train| / max|train|`` over all output elements (the largest
deviation relative to the output's dynamic range; robust to outputs near zero, unlike an element-wise ratio).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from hnanas.ops.fusion import reparameterize_model
from hnanas.ops.registry import build_op

#: Acceptance thresholds for ``max_rel_err`` (float32, float64).
TOLERANCE_F32 = 1e-5
TOLERANCE_F64 = 1e-10
RELATIVE_ERROR_DEFINITION = "max|deploy - train| / max|train| over all output elements (eval mode, same input)"


def randomize_parameters_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Randomise ``module`` in place for an equivalence check; returns it.

    BatchNorm: running mean ~ N(0, 0.5²), running var ~ U(0.5, 2), γ ~ U(0.5, 1.5), β ~ N(0, 0.5²).
    Other parameters: tensors of ≥ 2 dims ~ N(0, 1/fan_in) (fan_in = elements per output channel), vectors
    (biases) ~ N(0, 0.5²)."""
    with torch.no_grad():
        bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        bn_params = set()
        for bn in bns:
            if bn.running_mean is not None:
                bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=generator) * 0.5)
                bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=generator) * 1.5 + 0.5)
            if bn.weight is not None:
                bn.weight.copy_(torch.rand(bn.weight.shape, generator=generator) + 0.5)
                bn.bias.copy_(torch.randn(bn.bias.shape, generator=generator) * 0.5)
                bn_params.update((id(bn.weight), id(bn.bias)))
        for p in module.parameters():
            if id(p) in bn_params:
                continue
            if p.dim() >= 2:
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(fan_in))
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return module


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """``(max|actual − reference|, max|actual − reference| / max|reference|)``; the relative error is 0 when
    both are all-zero and infinite when only the reference is."""
    abs_err = float((actual.double() - reference.double()).abs().max()) if reference.numel() else 0.0
    scale = float(reference.double().abs().max()) if reference.numel() else 0.0
    if scale == 0.0:
        return abs_err, 0.0 if abs_err == 0.0 else math.inf
    return abs_err, abs_err / scale


@dataclass(frozen=True)
class EquivalenceResult:
    """Train vs deploy form of one op configuration, float32 and float64 (see module docstring)."""

    op: str
    c_in: int
    c_out: int
    stride: int
    height: int
    width: int
    max_abs_err: float
    max_rel_err: float
    max_abs_err_f64: float
    max_rel_err_f64: float
    tolerance: float = TOLERANCE_F32
    tolerance_f64: float = TOLERANCE_F64

    @property
    def passed(self) -> bool:
        return self.max_rel_err <= self.tolerance and self.max_rel_err_f64 <= self.tolerance_f64

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def train_and_deploy(name: str, c_in: int, c_out: int, stride: int = 1, *, seed: int = 0,
                     dtype: torch.dtype = torch.float32) -> tuple[nn.Module, nn.Module]:
    """Op ``name`` in train form with randomised parameters (eval mode) and its ``reparameterize_model`` copy."""
    train = build_op(name, c_in, c_out, stride)
    randomize_parameters_(train, torch.Generator().manual_seed(seed))  # redraws every parameter: deterministic
    train = train.to(dtype).eval()
    return train, reparameterize_model(train)


def check_equivalence(name: str, c_in: int, c_out: int, stride: int = 1, size: tuple[int, int] = (16, 16), *,
                      seed: int = 0, tolerance: float = TOLERANCE_F32,
                      tolerance_f64: float = TOLERANCE_F64) -> EquivalenceResult:
    """Compare op ``name``'s train and deploy forms on one random N(0, 1) image of ``c_in × size``."""
    train, deploy = train_and_deploy(name, c_in, c_out, stride, seed=seed)
    train64 = copy.deepcopy(train).double()
    deploy64 = reparameterize_model(train64)  # fused in float64, from the same parameters
    x = torch.randn((1, c_in) + tuple(size), generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    with torch.no_grad():
        abs32, rel32 = relative_error(deploy(x.float()), train(x.float()))
        abs64, rel64 = relative_error(deploy64(x), train64(x))
    return EquivalenceResult(name, c_in, c_out, stride, size[0], size[1], abs32, rel32, abs64, rel64,
                             tolerance, tolerance_f64)
