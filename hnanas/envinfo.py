"""A record of the machine and software a result was produced on (written into every run folder and table)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import sys
from functools import lru_cache
from typing import Any

import hnanas


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
    except OSError:
        pass
    return fields


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags (``/proc/cpuinfo``; empty elsewhere)."""
    return frozenset(_cpuinfo_fields().get("flags", "").split())


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_identity() -> str:
    """What tells two CPUs with one marketing name apart (the VMs here all say "AMD EPYC"): vendor, family,
    model, stepping and the vector/matrix extensions that change kernel speed, e.g. ``AuthenticAMD family 25
    model 1 stepping 1; avx2``."""
    f = _cpuinfo_fields()
    isa = [flag for flag in ISA_FLAGS if flag in cpu_flags()]
    parts = [f.get("vendor_id", platform.machine())]
    parts += [f"{label} {f[key]}" for key, label in (("cpu family", "family"), ("model", "model"),
                                                     ("stepping", "stepping")) if key in f]
    return f"{' '.join(parts)}; {', '.join(isa) or 'no avx2'}"


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - an optional package may fail to import in many ways
        return None
    return getattr(mod, "__version__", None)


@lru_cache(maxsize=1)
def _static_info() -> dict[str, Any]:
    import psutil

    mem = psutil.virtual_memory().total
    return {
        "hnanas": hnanas.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_identity": cpu_identity(),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "memory_gb": round(mem / 2**30, 1),
        "packages": {
            name: _version(name)
            for name in ("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "optuna", "pandas", "scipy")
        },
    }


def environment(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, host, CPU, memory and the current UTC time, plus ``extra`` (e.g. the torch device)."""
    info = dict(_static_info())
    info["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    info["ld_preload"] = os.environ.get("LD_PRELOAD", "")
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        pass
    if extra:
        info.update(extra)
    return info
