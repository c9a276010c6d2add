"""From a trained network to a measured deployment: re-parameterise (checked), export to ONNX (checked), time
it with ONNX Runtime, and put it next to the latency table's prediction.

The exported model is the deploy form (every re-parameterisable op fused, every Conv-BN folded) with the input
normalisation inside, so it takes the image as stored: ``input`` float32 ``N x 1 x H x W`` of raw pixel values
(0..255), H and W multiples of 32; ``output`` the logits ``N x 1 x H x W``. Its ``metadata_props`` carry
``hnanas.input_norm`` ([mean, std]), ``hnanas.pad_multiple`` (32) and ``hnanas.model`` (the spec), so
``hnanas evaluate`` pads images with the training mean exactly as the torch path does.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from hnanas.errors import HnanasError
from hnanas.fileio import write_bytes
from hnanas.latency import machine
from hnanas.latency import table as latency_table
from hnanas.nas.models import Normalized, main_output
from hnanas.ops import reparameterize_model
from hnanas.pipeline.sources import deploy_size, spec_space_genotype
from hnanas.runtime import DEVICES, check_device, export_onnx, get_device, make_session, session_settings, time_session

log = logging.getLogger(__name__)

EQUIVALENCE_TOL = 1e-4  # max |train - deploy| (and |torch - ONNX|) logits, relative to max(1, max |logits|)
EXACT_TOL = 1e-9  # the same in float64, where a correct fusion leaves 1e-15 to 2e-13 (seen on trained nets)
PAD_MULTIPLE = 32
REMOTE_DEVICES = ("edge-cpu",)  # same providers as cpu, but another machine: profiled there via --bundle


def relative_error(reference: torch.Tensor | np.ndarray, other: torch.Tensor | np.ndarray) -> float:
    a = np.asarray(reference.detach().cpu() if hasattr(reference, "detach") else reference, dtype=np.float64)
    b = np.asarray(other.detach().cpu() if hasattr(other, "detach") else other, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(a)))))


def reparameterize_checked(model: torch.nn.Module, images: torch.Tensor) -> torch.nn.Module:
    """The deploy form of ``model`` (eval mode, on CPU), after checking it computes what ``model`` computes in
    eval mode on ``images`` (normalised, N x 1 x H x W); a mismatch is an error naming the size of the gap."""
    model = model.cpu().eval()
    deploy = reparameterize_model(model).eval()
    err = _gap(model, deploy, images)
    if err <= EQUIVALENCE_TOL:
        return deploy
    # float32 rounding alone can exceed the tolerance on a real image (a bright flat background through many
    # central-difference convs subtracts large, nearly equal sums in the train form); float64 tells rounding from
    # a broken fusion
    model64 = copy.deepcopy(model).double().eval()
    exact = _gap(model64, reparameterize_model(model64).eval(), images.double())
    if not exact <= EXACT_TOL:
        raise HnanasError(f"re-parameterisation changed the network's output (max relative difference {err:.2e} > "
                          f"{EQUIVALENCE_TOL:g} on a real batch, {exact:.1e} in float64); an op's reparameterize() "
                          f"is broken, check it with `hnanas ops verify`")
    log.warning("re-parameterised network differs by %.2e (relative) from the trained one in float32 on a real "
                "batch, %.1e in float64: float32 rounding, not a broken fusion", err, exact)
    return deploy


def _gap(model: torch.nn.Module, deploy: torch.nn.Module, images: torch.Tensor) -> float:
    with torch.no_grad():
        return relative_error(main_output(model(images.cpu())), main_output(deploy(images.cpu())))


def deploy_network(deploy: torch.nn.Module, input_norm: Sequence[float] | None) -> torch.nn.Module:
    """The network that is exported: the deploy form behind the input normalisation (when there is one)."""
    net = Normalized(deploy, input_norm[0], input_norm[1]) if input_norm else deploy
    return net.cpu().eval()


def with_metadata(onnx_bytes: bytes, props: Mapping[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **props})
    return proto.SerializeToString()


def onnx_metadata(spec: Mapping, input_norm: Sequence[float] | None, extra: Mapping[str, str] | None = None) -> dict:
    """The ``metadata_props`` hnanas writes into every exported model."""
    props = {"hnanas.model": json.dumps(dict(spec), separators=(",", ":")),
             "hnanas.pad_multiple": str(PAD_MULTIPLE)}
    if input_norm:
        props["hnanas.input_norm"] = json.dumps([float(input_norm[0]), float(input_norm[1])])
    props.update(extra or {})
    return props


def check_onnx(onnx_bytes: bytes, net: torch.nn.Module, x: torch.Tensor, what: str = "exported model") -> float:
    """Run ``onnx_bytes`` on ``x`` with ONNX Runtime (CPU) and compare with ``net``; returns the relative error."""
    session = make_session(onnx_bytes, "cpu")
    got = session.run(None, {session.get_inputs()[0].name: x.cpu().numpy().astype(np.float32)})[0]
    with torch.no_grad():
        ref = main_output(net(x.cpu()))
    err = relative_error(ref, got)
    if not err <= EQUIVALENCE_TOL:
        raise HnanasError(f"{what}: ONNX Runtime output differs from torch (max relative difference {err:.2e} at "
                          f"input {tuple(x.shape)}); the export is wrong, report it with the model spec")
    return err


def export_checked(net: torch.nn.Module, example: torch.Tensor, metadata: Mapping[str, str], *,
                   dynamic: bool = False, path: str | Path | None = None) -> bytes:
    """Export ``net`` (``dynamo=True``, one file) at ``example``'s size, add ``metadata``, check it against torch
    at that size (and, with ``dynamic`` H/W, at a second size too), then write it to ``path`` (atomically)."""
    data = with_metadata(export_onnx(net, example, dynamo=True, dynamic_hw=dynamic), metadata)
    check_onnx(data, net, example)
    if dynamic:
        n, c, h, w = example.shape
        check_onnx(data, net, torch.rand(n, c, h + PAD_MULTIPLE, w + 2 * PAD_MULTIPLE,
                                         generator=torch.Generator().manual_seed(1)) * 255,
                   "exported model (second size)")
    if path is not None:
        write_bytes(path, data)
    return data


def local_devices() -> list[str]:
    """Devices whose providers run on this machine (``edge-cpu`` excluded: it is another machine)."""
    out = []
    for name in DEVICES:
        if name in REMOTE_DEVICES:
            continue
        try:
            check_device(name)
        except HnanasError as exc:
            log.debug("latency: skipping device %s (%s)", name, exc)
            continue
        out.append(name)
    return out


def find_table(spec: Mapping, device: str, threads: int | None) -> tuple[Path | None, int]:
    """The latency table for ``spec``'s space on ``device`` and the thread count to time with: ``threads`` when
    given, else the table's (the device's default preferred when several exist), else the device's default."""
    space, _ = spec_space_genotype(spec)
    default = get_device(device).default_threads
    if space is None:
        return None, threads or default
    if threads is not None:
        path = latency_table.default_table_path(space, device, threads)
        return (path if path.is_file() else None), threads
    found: set[int] = set()
    for folder in latency_table.table_dirs() + [machine.machine_tables_dir()]:
        for path in folder.glob(f"{space.name}_{device}_t*.csv"):
            m = re.fullmatch(rf"{re.escape(space.name)}_{re.escape(device)}_t(\d+)\.csv", path.name)
            if m:
                found.add(int(m.group(1)))
    if not found:
        return None, default
    chosen = default if default in found else min(found)
    return latency_table.default_table_path(space, device, chosen), chosen


def predicted_ms(spec: Mapping, device: str, threads: int) -> tuple[float | None, str]:
    """The table's prediction for ``spec`` on ``device`` at ``threads``, or ``None`` with the reason."""
    space, genotype = spec_space_genotype(spec)
    if space is None:
        return None, "baseline network: latency tables price search-space networks only"
    path = latency_table.default_table_path(space, device, threads)
    if not path.is_file():
        return None, (f"no latency table at {path}; measure one with `hnanas profile --space "
                      f"{space.name} --latency-device {device}`")
    try:
        table = latency_table.LatencyTable.load(path, space=space, device=device)
        return float(table.predict(genotype, space).total_ms), str(path)
    except HnanasError as exc:
        return None, str(exc)


def measure_latency(onnx_bytes: bytes, spec: Mapping, *, devices: Sequence[str] | None = None,
                    threads: int | None = None, size: Sequence[int] | None = None, sessions: int = 3) -> dict:
    """``{device: {measured_ms, predicted_ms, threads, providers, size, sessions_ms, table}}``: the median of
    ``sessions`` fresh sessions' median latencies at ``size`` (default: the deploy size) on every device."""
    h, w = (int(size[0]), int(size[1])) if size else deploy_size(spec)
    feeds = {"input": np.random.default_rng(0).uniform(0, 255, (1, 1, h, w)).astype(np.float32)}
    result = {}
    for device in devices if devices is not None else local_devices():
        check_device(device)
        table_path, n_threads = find_table(spec, device, threads)
        times, providers = [], []
        for _ in range(sessions):
            session = make_session(onnx_bytes, device, threads=n_threads)
            providers = session_settings(session, device, n_threads)["providers"]
            times.append(time_session(session, feeds).median_ms)
        predicted, note = predicted_ms(spec, device, n_threads)
        if predicted is None:
            log.info("latency %s: %s; predicted_ms left null", device, note)
        result[device] = {"measured_ms": float(np.median(times)), "predicted_ms": predicted, "threads": n_threads,
                          "providers": providers, "size": [h, w], "sessions_ms": times,
                          "table": str(table_path) if table_path else None,
                          **({} if predicted is not None else {"note": note})}
    return result
