"""Successive halving's rungs, and a batch of candidates halved at once.

Optuna's ``SuccessiveHalvingPruner`` is asynchronous: a candidate is compared at a rung with the candidates that
reached it before, so it stops nobody at a rung no one else has reached, and the first candidate of a search
always trains to the end (the second continues if it beats the first, and so on). With 16 candidates and two or
three finishers, the first is often the winner: a random network picked for having been drawn first
(``bench/halving_replay.py`` counts it). :func:`halve_batch` halves a batch the synchronous way instead: every
candidate trains to the first rung before any trains further, then the best 1/eta of the batch (of every
candidate that reached the rung, with those of an interrupted run's) continue to the next rung, and so on. The
pruner still sees every step (``should_prune`` registers the batch's values at its rungs), so the candidates
after the batch are compared with the batch's values by Optuna's asynchronous rule.

:class:`HalvingPruner` is Optuna's pruner with one change: the rung values of a FAIL trial do not compete. A
candidate cut short by a kill keeps the values it registered, is told FAIL on resume and trained again as a new
trial, which registers them again: Optuna's pruner would count that network twice at every rung it reached. (A
candidate whose final score is NaN is a FAIL trial too, Optuna's doing: its earlier rung values stop counting, as
the strategy's own ``trained`` leaves it out.)
"""

from __future__ import annotations

import math
from typing import Callable, Hashable, Iterable

import optuna

from hnanas.search.config import HalvingConfig


def rung_epochs(h: HalvingConfig, n_train: int) -> tuple[int, int]:
    """(first rung, last epoch) of a candidate on a training split of ``n_train`` images: ``h.min_epochs`` and
    ``h.max_epochs``, scaled to the split's size when ``h.rung_images`` is set (whole epochs that see at most the
    images those epochs see on ``h.rung_images``; at least one); with ``h.scale_first_rung`` off, only
    ``h.max_epochs`` scales."""
    if h.rung_images is None:
        return h.min_epochs, h.max_epochs
    lo = max(1, h.min_epochs * h.rung_images // n_train) if h.scale_first_rung else h.min_epochs
    return lo, max(lo, h.max_epochs * h.rung_images // n_train)


def rung_steps(lo: int, hi: int, eta: int) -> list[int]:
    """The epochs at which Optuna's pruner compares candidates (``lo`` x ``eta``^k below ``hi``), then ``hi``."""
    steps = [lo]
    while steps[-1] * eta < hi:
        steps.append(steps[-1] * eta)
    return steps if steps[-1] == hi else [*steps, hi]


def nan_last(value: float) -> float:
    """A score as it ranks: NaN after every number."""
    return math.inf if math.isnan(value) else value


def promotable(value: float, competing: Iterable[float], eta: int) -> bool:
    """Whether ``value`` (lower is better) is in the best 1/``eta`` of ``competing`` (which holds it; at least the
    best one continues): the rule of Optuna's ``SuccessiveHalvingPruner``, applied to a whole rung at once."""
    if math.isnan(value):  # the pruner stops a NaN score
        return False
    ranked = sorted(map(nan_last, competing))
    return value <= ranked[max(1, len(ranked) // eta) - 1]


Key = Hashable


def halve_batch(batch: list[Key], advance: Callable[[Key, int], float], earlier: Callable[[int], list[float]],
                lo: int, hi: int, eta: int, out_of_time: Callable[[], bool] = lambda: False) -> dict[Key, int]:
    """Halve ``batch`` synchronously: ``advance(key, epoch)`` trains a candidate on to ``epoch`` and returns its
    score there; at each rung the candidates whose score is in the best 1/``eta`` of the batch's and of
    ``earlier(epoch)`` (the scores other candidates reported at that epoch before the batch) go on. Once
    ``out_of_time()`` (checked before each candidate's stretch to a rung, not each epoch), the candidates not yet
    at the rung stop where they are and only the best at the rung goes on (a search has a result); the promoted
    candidates train on best first. Returns the epoch each candidate stopped at (``hi``: complete; 0: never
    trained)."""
    reached = dict.fromkeys(batch, 0)
    alive = list(batch)
    key = lambda item: nan_last(item[1])  # noqa: E731
    for step in rung_steps(lo, hi, eta):
        scores = {}
        for k in alive:
            if scores and out_of_time():
                break
            scores[k] = advance(k, step)
            reached[k] = step
        if step == hi or not scores:
            break
        if out_of_time():
            alive = [min(scores.items(), key=key)[0]]
        else:
            competing = [*earlier(step), *scores.values()]
            alive = [k for k, _ in sorted(scores.items(), key=key) if promotable(scores[k], competing, eta)]
    return reached


class _WithoutFailed:
    """A study as :class:`HalvingPruner` shows it to Optuna's rule: its trials without the FAIL ones."""

    def __init__(self, study: optuna.Study):
        self._study = study

    def __getattr__(self, name: str):
        return getattr(self._study, name)

    def get_trials(self, deepcopy: bool = True, states=None) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self._study.get_trials(deepcopy=deepcopy, states=states)
                if t.state != optuna.trial.TrialState.FAIL]


class HalvingPruner(optuna.pruners.SuccessiveHalvingPruner):
    """Optuna's ``SuccessiveHalvingPruner`` whose rungs count no FAIL trial (a killed candidate trained again
    would otherwise compete twice)."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return super().prune(_WithoutFailed(study), trial)
