"""The registry of model kinds: a spec's ``kind`` names the builder that makes its network.

Kept apart from :mod:`hnanas.nas.models` so that the modules that register a kind (the baselines) import only
this registry, while :mod:`hnanas.nas.models` imports them all (every kind is registered once ``models`` is
imported, without an import circle).
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from hnanas.errors import ConfigError

ModelBuilder = Callable[[dict, bool], nn.Module]  # (spec, deploy) -> module
_BUILDERS: dict[str, ModelBuilder] = {}
_NAMED: dict[str, dict] = {}


def register_model(kind: str, builder: ModelBuilder | None = None, *, named: dict[str, dict] | None = None):
    """Register a builder for spec ``kind`` (usable as a decorator); ``named`` adds named specs (e.g.
    ``{"dnanet": {"kind": "dnanet", "widths": [16, 32, 64, 128, 256]}}``) loadable by name."""
    def add(fn: ModelBuilder) -> ModelBuilder:
        if kind in _BUILDERS:
            raise ConfigError(f"model kind {kind!r} is registered twice")
        _BUILDERS[kind] = fn
        for name, spec in (named or {}).items():
            _NAMED[name] = {"kind": kind, **spec}
        return fn

    return add(builder) if builder is not None else add


def builder_of(kind) -> ModelBuilder:
    """The builder registered for ``kind``; an unknown kind is a :class:`ConfigError` naming the known ones."""
    if kind not in _BUILDERS:
        raise ConfigError(f"model spec: unknown kind {kind!r} (known: {', '.join(sorted(_BUILDERS))})")
    return _BUILDERS[kind]


def named_specs() -> dict[str, dict]:
    """The named specs registered so far (a copy)."""
    return dict(_NAMED)
