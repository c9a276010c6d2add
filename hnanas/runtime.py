"""ONNX export and ONNX Runtime execution: sessions per device, a provider check, and one timing routine.

Every latency hnanas reports (``ops verify``, ``profile``, ``profile validate``, ``retrain``) is measured by
:func:`time_session`, so warm-up, repeats and statistics are the same everywhere.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hnanas.errors import HnanasError
from hnanas.fileio import write_bytes

OPSET = 18


# --------------------------------------------------------------------------------------------- export
@contextlib.contextmanager
def _quiet_exporter():
    """The exporter warns about torchvision ops and prints progress; none of it is actionable here."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_onnx(model, example: "torch.Tensor | tuple[torch.Tensor, ...]", path: str | Path | None = None, *,
                dynamo: bool = True, dynamic_hw: bool = False, input_name: str = "input",
                output_name: str = "output", constant_folding: bool = True) -> bytes:
    """Export ``model`` (in eval mode) to a single self-contained ONNX model and return its bytes.

    ``dynamo=True`` is the deployment exporter (torch.export based, one file via ``external_data=False``);
    ``dynamo=False`` is the TorchScript exporter, ~50x faster, used where hundreds of small graphs are
    needed (latency profiling). ``dynamic_hw`` makes height and width symbolic. A tuple ``example`` exports a
    model with several inputs, named ``{input_name}0``, ``{input_name}1``, ... ``constant_folding=False`` skips
    the TorchScript exporter's folding pass (deploy forms have nothing to fold; profiling exports thousands).
    """
    import torch

    examples = tuple(example) if isinstance(example, (tuple, list)) else (example,)
    input_names = [input_name] if len(examples) == 1 else [f"{input_name}{i}" for i in range(len(examples))]

    was_training = model.training
    model.eval()
    try:
        with _quiet_exporter(), torch.no_grad():
            if dynamo:
                kwargs: dict[str, Any] = {}
                if dynamic_hw:
                    h, w = torch.export.Dim("height", min=8), torch.export.Dim("width", min=8)
                    kwargs["dynamic_shapes"] = tuple({2: h, 3: w} for _ in examples)
                program = torch.onnx.export(model, examples, dynamo=True, external_data=False,
                                            input_names=input_names, output_names=[output_name],
                                            opset_version=OPSET, verbose=False, **kwargs)
                data = program.model_proto.SerializeToString()
            else:
                buf = io.BytesIO()
                axes = {n: {2: "height", 3: "width"} for n in input_names + [output_name]}
                torch.onnx.export(model, examples, buf, dynamo=False, input_names=input_names,
                                  output_names=[output_name], opset_version=OPSET,
                                  dynamic_axes=axes if dynamic_hw else None, do_constant_folding=constant_folding)
                data = buf.getvalue()
    finally:
        model.train(was_training)
    if dynamic_hw:
        _check_dynamic_hw(data, type(model).__name__)
    if path is not None:
        write_bytes(path, data)
    return data


def _check_dynamic_hw(data: bytes, what: str) -> None:
    """The exporter falls back to fixed sizes when model code turns a symbolic size into a constant (e.g.
    ``int(x.shape[2])``); say so instead of writing a model that only takes one size."""
    import onnx

    for value in onnx.load_from_string(data).graph.input:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and (dims[2].HasField("dim_value") or dims[3].HasField("dim_value")):
            raise HnanasError(f"export of {what}: height/width were specialised to constants "
                              f"({dims[2].dim_value}x{dims[3].dim_value}); a size in the model code is made a "
                              f"Python int (e.g. int(x.shape[2])): keep it symbolic")


# -------------------------------------------------------------------------------------------- devices
@dataclass(frozen=True)
class DeviceSpec:
    """How a named device runs models: its execution providers (in priority order) and default threads."""

    name: str
    providers: tuple[str, ...]
    default_threads: int = 1
    description: str = ""
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)


DEVICES: dict[str, DeviceSpec] = {
    "cpu": DeviceSpec("cpu", ("CPUExecutionProvider",), 1, "this machine's CPU, ONNX Runtime CPU EP"),
    "edge-cpu": DeviceSpec("edge-cpu", ("CPUExecutionProvider",), 4,
                           "an embedded CPU (CPU EP, the device's thread count; profile it there via --bundle)"),
    "gpu": DeviceSpec("gpu", ("CUDAExecutionProvider",), 1, "an NVIDIA GPU, ONNX Runtime CUDA EP"),
    "jetson": DeviceSpec("jetson", ("TensorrtExecutionProvider", "CUDAExecutionProvider"), 1,
                         "an NVIDIA Jetson: TensorRT EP, falling back to CUDA EP",
                         {"TensorrtExecutionProvider": {"trt_engine_cache_enable": True}}),
}


def get_device(name: str) -> DeviceSpec:
    try:
        return DEVICES[name]
    except KeyError:
        raise HnanasError(f"unknown device {name!r}; known devices: {', '.join(DEVICES)}") from None


def _provider_list(device: DeviceSpec, fp16: bool = False, cache_dir: str | None = None) -> list:
    out: list = []
    for p in device.providers:
        opts = dict(device.provider_options.get(p, {}))
        if p == "TensorrtExecutionProvider":
            opts["trt_fp16_enable"] = bool(fp16)
            if cache_dir:
                opts["trt_engine_cache_path"] = cache_dir
        out.append((p, opts) if opts else p)
    if "CPUExecutionProvider" not in device.providers:
        out.append("CPUExecutionProvider")  # ORT needs it for nodes the accelerator does not take
    return out


_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
               "all": "ORT_ENABLE_ALL"}


def make_session(model: bytes | str | Path, device: str | DeviceSpec = "cpu", *, threads: int | None = None,
                 opt_level: str = "all", profile_prefix: str | None = None, fp16: bool = False):
    """An ``onnxruntime.InferenceSession`` for ``device`` with ``threads`` intra-op threads (default: the
    device's), sequential execution and the given graph-optimisation level."""
    import onnxruntime as ort

    spec = get_device(device) if isinstance(device, str) else device
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads if threads is not None else spec.default_threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[opt_level])
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = str(profile_prefix)
    src = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(src, so, providers=_provider_list(spec, fp16=fp16))


def session_settings(session, device: str | DeviceSpec, threads: int | None, opt_level: str = "all") -> dict:
    """The provenance fields every measurement records."""
    import onnxruntime as ort

    spec = get_device(device) if isinstance(device, str) else device
    return {
        "device": spec.name,
        "providers": list(session.get_providers()),
        "threads": int(threads if threads is not None else spec.default_threads),
        "graph_optimization_level": opt_level,
        "execution_mode": "sequential",
        "onnxruntime": ort.__version__,
    }


_PROBE_CACHE: dict[tuple[str, bool], None] = {}


def check_device(device: str, *, fp16: bool = False) -> None:
    """Prove ``device``'s providers run here: build a session on a tiny conv model, run it once, and check the
    session really uses the first provider. The provider list alone proves nothing (a wheel built for another
    GPU fails only at inference), so anything else is an error pointing to ``--bundle``."""
    if (device, fp16) in _PROBE_CACHE:
        return
    spec = get_device(device)
    primary = spec.providers[0]
    hint = (f"device {device!r} needs {primary}, which does not run on this machine; profile it on the device "
            f"itself with `hnanas profile --latency-device {device} --bundle OUT.zip` and import the result")
    try:
        import onnxruntime as ort

        if primary not in ort.get_available_providers():
            raise HnanasError(hint + f" (this onnxruntime build has {', '.join(ort.get_available_providers())})")
        sess = make_session(tiny_conv_model(), spec, threads=1, fp16=fp16)
        if primary not in sess.get_providers():
            raise HnanasError(hint + " (session fell back to " + ", ".join(sess.get_providers()) + ")")
        sess.run(None, {"input": np.zeros((1, 8, 16, 16), np.float32)})
    except HnanasError:
        raise
    except Exception as exc:  # noqa: BLE001 - any provider failure means the device does not run here
        raise HnanasError(hint + f" ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    _PROBE_CACHE[(device, fp16)] = None


def tiny_conv_model() -> bytes:
    """A one-conv ONNX model (input 1x8x16x16) built with onnx.helper, for provider probes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 8, 3, 3)).astype(np.float32), "w")
    node = helper.make_node("Conv", ["input", "w"], ["output"], pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "probe",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 16, 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8, 16, 16])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)
    onnx.checker.check_model(model)
    return model.SerializeToString()


# --------------------------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class Timing:
    """Latency statistics of repeated runs, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    n: int

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: the relative run-to-run spread."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms > 0 else 0.0

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> "Timing":
        a = np.asarray(samples_ms, dtype=np.float64)
        return cls(float(np.median(a)), float(np.percentile(a, 10)), float(np.percentile(a, 90)), int(a.size))


def random_inputs(session, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float inputs matching the session's (static) input shapes; symbolic dims become 1."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def time_session(session, feeds: dict[str, np.ndarray] | None = None, *, warmup: int = 3,
                 min_repeats: int = 10, max_repeats: int = 200, min_time_s: float = 0.2) -> Timing:
    """Run ``session`` ``warmup`` times untimed, then at least ``min_repeats`` times and until ``min_time_s``
    of timed runs (at most ``max_repeats``); each run is timed alone with ``perf_counter`` (ORT's ``run``
    returns when outputs are on the host, so no extra synchronisation is needed). Median and percentiles."""
    feeds = feeds if feeds is not None else random_inputs(session)
    outputs = [o.name for o in session.get_outputs()]
    run = session.run
    for _ in range(warmup):
        run(outputs, feeds)
    samples: list[float] = []
    spent = 0.0
    while len(samples) < max_repeats and (len(samples) < min_repeats or spent < min_time_s):
        t0 = time.perf_counter()
        run(outputs, feeds)
        dt = time.perf_counter() - t0
        samples.append(dt * 1e3)
        spent += dt
    return Timing.from_samples(samples)


def measure_model(model: bytes | str | Path, device: str = "cpu", *, threads: int | None = None,
                  opt_level: str = "all", **timing_kwargs) -> tuple[Timing, dict]:
    """Build a session for ``model`` on ``device`` and time it; returns the timing and its settings."""
    sess = make_session(model, device, threads=threads, opt_level=opt_level)
    timing = time_session(sess, **timing_kwargs)
    return timing, session_settings(sess, device, threads, opt_level)


def run_onnx(model: bytes | str | Path, x: np.ndarray, device: str = "cpu", threads: int | None = None) -> np.ndarray:
    """Run a single-input single-output model once (used to check exports against torch)."""
    sess = make_session(model, device, threads=threads)
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
