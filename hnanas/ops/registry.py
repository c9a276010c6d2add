"""The op registry: one name → one constructor with one signature.

Every candidate op of the supernet is built by ``build_op(name, c_in, c_out, stride, deploy=...)``, which calls
the registered constructor ``(c_in, c_out, stride, *, deploy=False) -> nn.Module``. Names are stable (they
appear in genotypes and latency tables), registration order is listing order, and registering a name twice is
an error. Callers never special-case an op: what differs between ops is described by :class:`OpInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, get_args

from torch import nn

from hnanas.errors import ConfigError

OpConstructor = Callable[..., nn.Module]

#: Families of ops; ``rep3x3`` ops fuse into exactly one 3×3 conv (+ReLU) in deploy form.
Family = Literal["residual", "grouped", "separable", "mbconv", "rep3x3", "rep-dw", "dilated", "identity"]


@dataclass(frozen=True)
class OpInfo:
    """What callers need to know about an op, besides building it."""

    name: str  # stable registry name (used in genotypes and latency tables)
    family: str  # one of ``Family``
    reparameterizable: bool  # has multi-branch train form fused by reparameterize() (beyond BN folding)
    same_shape_only: bool  # exists only for c_in == c_out and stride 1 (e.g. identity)
    activation: Literal["relu", "none"]  # activation at the op's output (deploy form included)
    description: str  # one line for `hnanas ops list`
    constructor: OpConstructor  # (c_in, c_out, stride, *, deploy=False) -> nn.Module


_REGISTRY: dict[str, OpInfo] = {}


def register_op(name: str, *, family: str, description: str, reparameterizable: bool = False,
                same_shape_only: bool = False, activation: Literal["relu", "none"] = "relu"
                ) -> Callable[[OpConstructor], OpConstructor]:
    """Decorator registering ``constructor(c_in, c_out, stride, *, deploy=False)`` under ``name``.

    Raises ``ConfigError`` when ``name`` is already registered (names must stay unique and stable)."""
    if family not in get_args(Family):
        raise ConfigError(f"op {name!r}: unknown family {family!r} (known: {', '.join(get_args(Family))})")

    def decorate(constructor: OpConstructor) -> OpConstructor:
        if name in _REGISTRY:
            owner = _REGISTRY[name].constructor
            raise ConfigError(f"op {name!r} is already registered (by {owner.__module__}.{owner.__qualname__}); "
                              f"register the new op under another name")
        _REGISTRY[name] = OpInfo(name, family, reparameterizable, same_shape_only, activation, description,
                                 constructor)
        return constructor

    return decorate


def unregister_op(name: str) -> None:
    """Remove ``name`` from the registry (for tests and plugins that replace their own op)."""
    _REGISTRY.pop(name, None)


def list_ops(*, reparameterizable: bool | None = None, family: str | None = None) -> list[str]:
    """Registered op names in registration order, optionally filtered."""
    return [n for n, info in _REGISTRY.items()
            if (reparameterizable is None or info.reparameterizable == reparameterizable)
            and (family is None or info.family == family)]


def op_info(name: str) -> OpInfo:
    """The :class:`OpInfo` of ``name``; unknown names raise ``ConfigError`` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown op {name!r}; known ops: {', '.join(_REGISTRY)}") from None


def _check_int(what: str, value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"op {name!r}: {what} must be a positive integer, got {value!r}")
    return value


def check_op_args(name: str, c_in: int, c_out: int, stride: int) -> OpInfo:
    """Validate a build request; errors name the op and the fix."""
    info = op_info(name)
    _check_int("c_in", c_in, name)
    _check_int("c_out", c_out, name)
    if stride not in (1, 2) or isinstance(stride, bool):
        raise ConfigError(f"op {name!r}: stride must be 1 or 2, got {stride!r}")
    if info.same_shape_only and (c_in != c_out or stride != 1):
        raise ConfigError(f"op {name!r} only exists for c_in == c_out and stride 1 (got c_in={c_in}, "
                          f"c_out={c_out}, stride={stride}); leave it out of this node's candidates")
    return info


def build_op(name: str, c_in: int, c_out: int, stride: int = 1, *, deploy: bool = False) -> nn.Module:
    """Build op ``name`` mapping ``c_in`` to ``c_out`` channels with ``stride`` (1 or 2); ``deploy=True`` builds
    the fused inference form directly (same structure as the train form after ``reparameterize()``)."""
    info = check_op_args(name, c_in, c_out, stride)
    return info.constructor(c_in, c_out, stride, deploy=deploy)
