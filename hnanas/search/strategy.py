"""Search strategies as plug-ins of one interface, in one registry (like the ops and the model kinds).

A strategy turns a :class:`~hnanas.search.context.SearchContext` into a genotype, writing what it needs to resume
into the run folder; ``hnanas search --strategy NAME`` picks one (recorded in ``config.yaml`` and
``genotype.json``), and every strategy's run folder ends the same way (:func:`hnanas.search.outputs.finish_search`:
``genotype.json`` with the prediction, MACs, params and the table), so ``retrain``, ``report`` and ``sweep`` work
with any of them. Built in: ``two-stage`` (the default; :mod:`hnanas.search.two_stage`) and ``halving``
(:mod:`hnanas.search.halving`).

To add one: subclass :class:`Strategy`, set ``name`` and ``summary``, implement :meth:`Strategy.run`, and
decorate the class with :func:`register_strategy`. :mod:`hnanas.search.strategies` imports the built-in ones and
looks strategies up by name.
"""

from __future__ import annotations

from typing import ClassVar

from hnanas.errors import ConfigError
from hnanas.nas.genotype import Genotype

_STRATEGIES: dict[str, type["Strategy"]] = {}


class Strategy:
    """One way of searching. ``run`` may be called on a fresh run folder or, with ``resume``, on one it left."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def __init__(self, ctx):
        self.ctx = ctx

    def run(self, resume: bool) -> Genotype:
        """Search and return the found genotype (every process of a multi-process run returns the same)."""
        raise NotImplementedError

    def info(self) -> dict:
        """Strategy-specific entries for ``genotype.json``'s info (e.g. the last validation IoU)."""
        return {}

    def figures(self) -> None:
        """Draw the strategy's figures into the run folder (called once, after ``run``, by the main process)."""


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available as ``--strategy cls.name``."""
    if not cls.name or cls.name in _STRATEGIES:
        raise ConfigError(f"search strategy {cls.name!r} has no name or is registered twice")
    _STRATEGIES[cls.name] = cls
    return cls


def registered() -> dict[str, type[Strategy]]:
    """The strategies registered so far, by name, in registration order (a copy)."""
    return dict(_STRATEGIES)
