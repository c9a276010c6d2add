"""The halving strategy's start-up candidates: drawn inside the latency band, and halved as one batch.

Under a budget with a floor, the ``startup_trials`` random candidates TPE starts from are drawn inside
[floor x T, T] by the matched-latency sampler (:meth:`StartupBatch.startup_candidates`). With
``halving.sync_startup`` they are halved as one batch (:meth:`StartupBatch.startup_batch`, by
:func:`hnanas.search.rungs.halve_batch`): each trains to the first rung before any trains further, so the first
candidate drawn does not go through every rung unopposed, as it does under Optuna's asynchronous pruner.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import optuna

from hnanas.latency.matched import sample_at_latency
from hnanas.search.rungs import halve_batch
from hnanas.search.trial_params import params_of

log = logging.getLogger("hnanas.search")


@dataclass
class InTraining:
    """A start-up batch's networks in training (``pending``: {network: trial}) and the trials that proposed one of
    them again (``waiting``: (trial, its twin's number)), told the twin's scores once the twin is told."""
    pending: dict[str, int] = field(default_factory=dict)
    waiting: list[tuple[optuna.Trial, int]] = field(default_factory=list)


def startup_seed(seed: int) -> int:
    """The seed of the start-up candidates' draws: a stream apart from ``sample_at_latency(seed=seed)``'s."""
    return 1_000_003 + seed


class StartupBatch:
    """The start-up part of :class:`hnanas.search.halving.Halving` (a mixin of it): uses its ``ctx``, ``budget_ms``,
    ``study``, ``log`` (``trials.csv``), ``spent_s``, ``min_epochs``, ``max_epochs`` and its methods ``draw``,
    ``train``, ``replay``, ``scores_at`` and ``out_of_time``."""

    def startup_candidates(self) -> list[dict]:
        """Under a budget with a floor, the random start-up candidates are drawn inside [floor * T, T] by the
        matched-latency sampler (its broad prior reaches every band; uniform edges and ops land in a narrow band
        a few times in a hundred), from a stream of their own: not the random networks a comparison at this
        latency draws with the same seed."""
        h = self.ctx.cfg.halving
        if self.budget_ms is None or h.floor == 0:
            return []
        lo, hi = h.floor * self.budget_ms, self.budget_ms
        seed = startup_seed(self.ctx.cfg.seed)
        found = sample_at_latency(self.ctx.space, self.ctx.table, (lo + hi) / 2, h.startup_trials,
                                  tol=(hi - lo) / (hi + lo), seed=seed)
        rng = random.Random(seed)
        return [params_of(self.ctx.space, m.genotype, rng) for m in found]

    def startup_batch(self, n: int, bar) -> None:
        """Draw ``n`` candidates to train (the start-up ones) and halve them as one batch
        (:func:`hnanas.search.rungs.halve_batch`: each trains to the first rung before any trains further), each
        against the batch and the candidates trained before a kill. Their rows reach ``trials.csv`` when they are
        told (a killed batch is trained again from its start); till then the log and the bar say where it is."""
        drawn = InTraining()
        batch: dict[int, tuple[optuna.Trial, object, list[dict]]] = {}
        while len(batch) < n:
            trial, g = self.draw(drawn)
            if g is not None:
                drawn.pending[trial.user_attrs["network"]] = trial.number
                runs = self.train(g, trial.user_attrs["predicted_ms"], desc=f"candidate {trial.number}")
                batch[trial.number] = (trial, runs, [])

        def advance(k: int, epoch: int) -> float:
            trial, runs, rows = batch[k]
            bar.set_postfix_str(f"start-up batch: candidate {k} to epoch {epoch}")
            while not rows or rows[-1]["epoch"] < epoch:
                row = next(runs)
                trial.report(row["score"], row["epoch"])
                trial.should_prune()  # registers the score at a rung for the pruner's later candidates
                self.spent_s += row["seconds"]
                rows.append(row)
            log.info("halving: start-up batch: candidate %d at epoch %d, score %.4f", k, epoch, rows[-1]["score"])
            return rows[-1]["score"]

        h = self.ctx.cfg.halving
        reached = halve_batch(list(batch), advance, self.scores_at, self.min_epochs, self.max_epochs, h.eta,
                              self.out_of_time)
        for k, epoch in reached.items():
            trial, runs, rows = batch[k]
            runs.close()
            if not rows:  # the time ran out before its first epoch
                self.log.append({"trial": k, "epoch": 0, "predicted_ms": round(trial.user_attrs["predicted_ms"], 4),
                                 "state": "not trained (time limit)"})
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            complete = epoch == self.max_epochs
            for row in rows:
                row["state"] = "running" if row is not rows[-1] else "complete" if complete else "stopped"
                self.log.append({"trial": k, **row})
            self.study.tell(trial, rows[-1]["score"] if complete else None,
                            state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.PRUNED)
            bar.update()
        bar.set_postfix_str("")
        told = self.study.get_trials(deepcopy=False)
        for trial, twin in drawn.waiting:  # proposed again while its twin trained: TPE learns the twin's scores
            state, value = self.replay(trial, told[twin], trial.user_attrs["predicted_ms"])
            self.study.tell(trial, value, state=state)
