"""``hnanas ops verify``: equivalence and ONNX Runtime latency of train form, deploy form and a plain 3×3 conv.

For each op at one shape (c_in = c_out = C, stride 1):

1. **Equivalence** (:mod:`hnanas.ops.equivalence`): train vs deploy form with randomised BN statistics, float32
   and float64; plus the exported deploy ONNX model vs torch, and a check that the deploy graph has no
   BatchNormalization left.
2. **Latency**: the train form, the deploy form and the reference (``Conv2d(C, C, 3, padding=1)`` followed by
   the op's deploy activation) are exported with the same exporter and timed in ONNX Runtime, interleaved in
   ``rounds`` rounds (round r visits the three models starting at model r mod 3: A B C, B C A, C A B, ...), each
   visit being one :func:`hnanas.runtime.time_session` call (its own warm-up, then repeats for at least
   ``min_time_s``). A model's latency is the median over rounds of the per-visit medians; its spread is
   (p90 − p10)/median of those round medians. Interleaving spreads slow phases of a shared machine over all
   three models instead of biasing whichever was measured during them. The ratios ``deploy_over_plain`` and
   ``train_over_deploy`` are paired: the median over rounds of the ratio within each round, which cancels load
   changes between rounds (their spread is reported too).
3. **Graph check**: whether the deploy ONNX graph equals the plain conv's up to weight values and names
   (same nodes, attributes and initializer shapes): for the ``rep3x3`` ops this is the premise of the latency
   target, checked exactly rather than through noisy timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hnanas.envinfo import environment
from hnanas.ops.counting import count_macs, count_params
from hnanas.ops.equivalence import (RELATIVE_ERROR_DEFINITION, TOLERANCE_F32, TOLERANCE_F64, EquivalenceResult,
                                    check_equivalence, relative_error, train_and_deploy)
from hnanas.ops.registry import list_ops, op_info
from hnanas.progress import progress
from hnanas.runtime import (OPSET, Timing, export_onnx, make_session, random_inputs, session_settings, time_session,
                            tiny_conv_model)

#: Tolerance of the exported deploy model (ONNX Runtime) against torch: a guard against a wrong export.
ONNX_TOLERANCE = 1e-4
MODELS = ("train", "deploy", "plain_conv")


def plain_conv_reference(channels: int, activation: str = "relu") -> nn.Module:
    """``Conv2d(C, C, 3, padding=1)`` followed by ``activation`` ("relu" or "none"): what a fused 3×3 op should
    cost."""
    conv = nn.Conv2d(channels, channels, 3, padding=1)
    return nn.Sequential(conv, nn.ReLU()) if activation == "relu" else nn.Sequential(conv)


def onnx_op_types(model_bytes: bytes) -> list[str]:
    """Node types of an ONNX model's main graph, in order."""
    import onnx

    return [node.op_type for node in onnx.load_from_string(model_bytes).graph.node]


def graph_signature(model_bytes: bytes) -> tuple:
    """An ONNX graph up to tensor names and weight values: node types with their attributes, and the shapes of
    the initializers. Two models with equal signatures run the same kernels."""
    import onnx

    graph = onnx.load_from_string(model_bytes).graph
    nodes = tuple((n.op_type, tuple(sorted((a.name, repr(onnx.helper.get_attribute_value(a))) for a in n.attribute)))
                  for n in graph.node)
    return nodes, tuple(sorted(tuple(t.dims) for t in graph.initializer))


def interleaved_round_medians(sessions: dict[str, object], feeds: dict[str, np.ndarray], *, rounds: int,
                              min_time_s: float, warmup: int = 3) -> dict[str, list[float]]:
    """Time ``sessions`` interleaved over ``rounds`` rounds with rotating start (see module docstring); returns
    per model the per-round medians (ms), in round order."""
    names = list(sessions)
    medians: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            timing = time_session(sessions[name], feeds, warmup=warmup, min_time_s=min_time_s)
            medians[name].append(timing.median_ms)
    return medians


def paired_ratio(numerator: list[float], denominator: list[float]) -> Timing:
    """Median (and p10/p90) over rounds of ``numerator[r] / denominator[r]`` (a :class:`Timing` of ratios)."""
    return Timing.from_samples([a / b for a, b in zip(numerator, denominator)])


@dataclass
class OpVerification:
    """Everything ``ops verify`` measured for one op."""

    name: str
    family: str
    equivalence: EquivalenceResult
    onnx_max_rel_err: float
    deploy_onnx_ops: list[str]
    deploy_graph_equals_plain: bool  # same nodes/attributes/initializer shapes as the plain conv reference
    round_ms: dict[str, list[float]]  # per-round medians; keys: MODELS
    macs: dict[str, int]  # train / deploy
    params: dict[str, int]  # train / deploy

    @property
    def timings(self) -> dict[str, Timing]:
        """Per model: median, p10, p90 over the round medians."""
        return {k: Timing.from_samples(v) for k, v in self.round_ms.items()}

    @property
    def deploy_over_plain(self) -> Timing:
        return paired_ratio(self.round_ms["deploy"], self.round_ms["plain_conv"])

    @property
    def train_over_deploy(self) -> Timing:
        return paired_ratio(self.round_ms["train"], self.round_ms["deploy"])

    @property
    def passed(self) -> bool:
        return (self.equivalence.passed and self.onnx_max_rel_err <= ONNX_TOLERANCE
                and "BatchNormalization" not in self.deploy_onnx_ops)

    def to_dict(self) -> dict:
        timings = self.timings
        t = {k: v.median_ms for k, v in timings.items()}
        dop, tod = self.deploy_over_plain, self.train_over_deploy
        return {
            "family": self.family,
            "max_rel_err": self.equivalence.max_rel_err,
            "max_rel_err_f64": self.equivalence.max_rel_err_f64,
            "max_abs_err": self.equivalence.max_abs_err,
            "max_abs_err_f64": self.equivalence.max_abs_err_f64,
            "onnx_max_rel_err": self.onnx_max_rel_err,
            "train_ms": t["train"],
            "deploy_ms": t["deploy"],
            "plain_conv_ms": t["plain_conv"],
            "deploy_over_plain": dop.median_ms,
            "train_over_deploy": tod.median_ms,
            "spread": {**{k: v.spread for k, v in timings.items()},
                       "deploy_over_plain": dop.spread, "train_over_deploy": tod.spread},
            "p10_ms": {k: v.p10_ms for k, v in timings.items()},
            "p90_ms": {k: v.p90_ms for k, v in timings.items()},
            "round_ms": self.round_ms,
            "deploy_onnx_ops": self.deploy_onnx_ops,
            "deploy_graph_equals_plain": self.deploy_graph_equals_plain,
            "macs": self.macs,
            "params": self.params,
            "passed": self.passed,
        }


@dataclass
class VerifyReport:
    """Result of :func:`verify_ops`: one :class:`OpVerification` per op, and the settings it ran under."""

    ops: dict[str, OpVerification]
    settings: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.ops.values())

    def to_dict(self) -> dict:
        return {"ops": {n: v.to_dict() for n, v in self.ops.items()}, "settings": self.settings,
                "passed": self.passed}

    def format_table(self) -> str:
        """A fixed-width table for the terminal (the CLI prints it)."""
        head = (f"{'op':<9} {'rel err f32':>11} {'rel err f64':>11} {'train ms':>9} {'deploy ms':>9} "
                f"{'3x3 ms':>8} {'dep/3x3':>7} {'±':>5} {'trn/dep':>7} {'spread':>6} {'=3x3':>4}  ok")
        lines = [head, "-" * len(head)]
        for name, v in self.ops.items():
            d = v.to_dict()
            spread = max(d["spread"][k] for k in MODELS)
            lines.append(f"{name:<9} {d['max_rel_err']:>11.2e} {d['max_rel_err_f64']:>11.2e} {d['train_ms']:>9.3f} "
                         f"{d['deploy_ms']:>9.3f} {d['plain_conv_ms']:>8.3f} {d['deploy_over_plain']:>7.3f} "
                         f"{d['spread']['deploy_over_plain']:>5.1%} {d['train_over_deploy']:>7.2f} {spread:>6.1%} "
                         f"{'yes' if d['deploy_graph_equals_plain'] else 'no':>4}  {'yes' if v.passed else 'NO'}")
        s = self.settings
        lines.append(f"shape {s['shape']}, {s['threads']} thread(s), {s['rounds']} interleaved rounds; "
                     f"max_rel_err = {RELATIVE_ERROR_DEFINITION}; tolerances {TOLERANCE_F32:g} (f32), "
                     f"{TOLERANCE_F64:g} (f64); ratios = median over rounds of the within-round ratio, ± its "
                     f"(p90-p10)/median; spread = (p90-p10)/median of round medians (largest of the 3 models); "
                     f"=3x3: deploy ONNX graph equals the plain conv's up to weights")
        return "\n".join(lines)


def verify_op(name: str, shape: tuple[int, int, int], *, threads: int = 1, rounds: int = 7,
              min_time_s: float = 0.25, seed: int = 0, dynamo: bool = True) -> OpVerification:
    """Equivalence and interleaved latency of op ``name`` at ``shape`` = (C, H, W), c_in = c_out = C, stride 1."""
    c, h, w = shape
    info = op_info(name)
    equivalence = check_equivalence(name, c, c, 1, (h, w), seed=seed)
    train, deploy = train_and_deploy(name, c, c, 1, seed=seed)
    plain = plain_conv_reference(c, info.activation).eval()
    example = torch.randn((1, c, h, w), generator=torch.Generator().manual_seed(seed + 2))
    models = {label: export_onnx(module, example, dynamo=dynamo)
              for label, module in zip(MODELS, (train, deploy, plain))}
    sessions = {k: make_session(v, "cpu", threads=threads) for k, v in models.items()}
    feeds = random_inputs(sessions["deploy"], seed=seed)
    (onnx_out,) = sessions["deploy"].run(None, {sessions["deploy"].get_inputs()[0].name: example.numpy()})
    with torch.no_grad():
        _, onnx_rel = relative_error(torch.from_numpy(onnx_out), deploy(example))
    round_ms = interleaved_round_medians(sessions, feeds, rounds=rounds, min_time_s=min_time_s)
    return OpVerification(
        name=name, family=info.family, equivalence=equivalence, onnx_max_rel_err=onnx_rel,
        deploy_onnx_ops=onnx_op_types(models["deploy"]),
        deploy_graph_equals_plain=graph_signature(models["deploy"]) == graph_signature(models["plain_conv"]),
        round_ms=round_ms,
        macs={"train": count_macs(train, shape), "deploy": count_macs(deploy, shape)},
        params={"train": count_params(train), "deploy": count_params(deploy)},
    )


def verify_ops(names: Sequence[str] | None = None, shape: tuple[int, int, int] = (16, 256, 256), *,
               threads: int = 1, rounds: int = 7, min_time_s: float = 0.25, seed: int = 0,
               dynamo: bool = True) -> VerifyReport:
    """:func:`verify_op` for ``names`` (default: every re-parameterisable op), with a progress bar over ops."""
    names = list(names) if names is not None else list_ops(reparameterizable=True)
    for name in names:
        op_info(name)  # unknown names fail before any work
    results: dict[str, OpVerification] = {}
    for name in progress(names, desc="ops verify", unit="op"):
        results[name] = verify_op(name, shape, threads=threads, rounds=rounds, min_time_s=min_time_s, seed=seed,
                                  dynamo=dynamo)
    probe = make_session(tiny_conv_model(), "cpu", threads=threads)  # records the session settings used above
    settings = {
        "shape": list(shape), "c_in": shape[0], "c_out": shape[0], "stride": 1, "threads": threads,
        "rounds": rounds, "min_time_s_per_visit": min_time_s, "warmup_runs_per_visit": 3, "seed": seed,
        "order": "interleaved; round r starts at model r mod 3 of (train, deploy, plain_conv)",
        "latency_statistic": "median over rounds of per-visit medians; spread = (p90-p10)/median over rounds",
        "ratio_statistic": "median over rounds of the within-round ratio (paired); spread as above",
        "exporter": "dynamo" if dynamo else "torchscript", "opset": OPSET,
        "plain_conv": "Conv2d(C, C, 3, padding=1) + the op's deploy activation",
        "max_rel_err_definition": RELATIVE_ERROR_DEFINITION,
        "tolerance_f32": TOLERANCE_F32, "tolerance_f64": TOLERANCE_F64, "onnx_tolerance": ONNX_TOLERANCE,
        "bn_statistics": "randomised (running mean/var, weight, bias); eval mode",
        "session": session_settings(probe, "cpu", threads),
        "environment": environment(),
    }
    return VerifyReport(results, settings)
