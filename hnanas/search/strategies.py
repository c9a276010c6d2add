"""The search strategies by name: the built-in ones registered (``two-stage`` first: the default), and lookup.

The interface and the registry are :mod:`hnanas.search.strategy`; importing this module registers
:mod:`hnanas.search.two_stage` and :mod:`hnanas.search.halving`.
"""

from __future__ import annotations

from hnanas.errors import ConfigError
from hnanas.search import halving as _halving  # noqa: F401  (registers halving)
from hnanas.search import two_stage as _two_stage  # noqa: F401  (registers two-stage)
from hnanas.search.strategy import Strategy, registered


def strategy_names() -> list[str]:
    """The registered strategies' names, the default first."""
    return sorted(registered(), key=lambda name: name != "two-stage")


def get_strategy(name: str) -> type[Strategy]:
    strategies = registered()
    if name not in strategies:
        raise ConfigError(f"unknown search strategy {name!r}; choose one of: {', '.join(strategy_names())}")
    return strategies[name]
