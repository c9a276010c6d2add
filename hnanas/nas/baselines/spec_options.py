"""Reading a baseline's options from its model spec: defaults, strict keys, typed values.

A baseline spec is ``{"kind": KIND, <options>..., "input_norm": [mean, std]?}``. ``kind`` and ``input_norm``
belong to :mod:`hnanas.nas.models`; every other key must be one of the baseline's options, so a typo
(``"width"`` for ``"widths"``) is an error naming the known keys instead of a silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Mapping

from hnanas.errors import ConfigError

#: Keys every spec may carry, handled by ``hnanas.nas.models.build_model``.
COMMON_KEYS = ("kind", "input_norm")


def spec_options(spec: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` overridden by the spec's values; keys outside ``defaults`` and :data:`COMMON_KEYS` raise
    ``ConfigError``. Values are not checked here (see :func:`positive_ints`, :func:`flag`, :func:`fraction`)."""
    kind = spec.get("kind")
    unknown = sorted(set(spec) - set(defaults) - set(COMMON_KEYS))
    if unknown:
        raise ConfigError(f"model spec {kind!r}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"known keys: {', '.join(list(COMMON_KEYS) + list(defaults))}")
    return {key: spec.get(key, value) for key, value in defaults.items()}


def positive_ints(kind: str, key: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of positive integers (``length`` of them when given), else ``ConfigError``."""
    ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok or (length is not None and len(value) != length):
        count = f"{length} " if length is not None else ""
        raise ConfigError(f"model spec {kind!r}: {key!r} must be a list of {count}positive integers, got {value!r}")
    return tuple(int(v) for v in value)


def flag(kind: str, key: str, value: Any) -> bool:
    """``value`` as a bool (JSON true/false only, not "True" or 1), else ``ConfigError``."""
    if not isinstance(value, bool):
        raise ConfigError(f"model spec {kind!r}: {key!r} must be true or false, got {value!r}")
    return value


def fraction(kind: str, key: str, value: Any) -> float:
    """``value`` as a float in [0, 1), else ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"model spec {kind!r}: {key!r} must be a number in [0, 1), got {value!r}")
    return float(value)
