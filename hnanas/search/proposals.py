"""The halving strategy's proposals: a candidate asked of Optuna's study, and whether to train it.

:meth:`Proposals.draw` asks the study for a trial and prices its network with the latency table. A candidate
outside the band [``halving.floor`` x T, T] is told at once (stopped, its distance outside the band its
constraint, from which TPE learns the feasible region); a network trained before (TPE repeats itself, and
parameter settings that differ only in nodes the network leaves out are the same network) is not trained again
(:meth:`Proposals.replay`: the trial is told its twin's scores); a network of a start-up batch in training now
waits for its twin (:class:`hnanas.search.startup.InTraining`). Only a new network inside the band is trained.
"""

from __future__ import annotations

import json

import optuna

from hnanas.nas.genotype import Genotype
from hnanas.search.startup import InTraining
from hnanas.search.trial_params import genotype_of, param_space

DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def trained(t: optuna.trial.FrozenTrial) -> bool:
    """Whether a candidate was trained: done, inside the latency band, not a network trained before."""
    return t.state in DONE and not ({"excess_ms", "same_as"} & t.user_attrs.keys())


class Proposals:
    """The proposal part of :class:`hnanas.search.halving.Halving` (a mixin of it): uses its ``ctx``, ``study``,
    ``budget_ms``, ``draws``, ``log`` (``trials.csv``) and its ``out_of_draws`` / ``out_of_draws_error``."""

    def trained_twin(self, key: str) -> optuna.trial.FrozenTrial | None:
        """The candidate trained earlier with the same network (TPE proposes a network again, and parameter
        settings that differ only in nodes the network leaves out are the same network)."""
        return next((t for t in self.study.get_trials(deepcopy=False, states=DONE)
                     if t.user_attrs.get("network") == key and trained(t)), None)

    def replay(self, trial: optuna.Trial, twin: optuna.trial.FrozenTrial, ms: float):
        """Tell the study the twin's scores for this trial (TPE learns that the network was proposed again), without
        training it or asking the pruner (its rungs count each network once)."""
        for epoch, score in sorted(twin.intermediate_values.items()):
            trial.report(score, epoch)
        trial.set_user_attr("same_as", twin.number)
        self.log.append({"trial": trial.number, "epoch": 0, "predicted_ms": round(ms, 4),
                         "state": f"same as {twin.number}"})
        # a stopped twin is told as stopped without a value (Optuna takes its last reported score)
        return twin.state, twin.value if twin.state == optuna.trial.TrialState.COMPLETE else None

    def suggest(self, trial: optuna.Trial) -> Genotype:
        params = {key: trial.suggest_categorical(key, choices) for key, _, _, choices in param_space(self.ctx.space)}
        return genotype_of(self.ctx.space, params, name=f"trial_{trial.number}")

    def draw(self, batch: InTraining | None = None) -> tuple[optuna.Trial, Genotype | None]:
        """Ask the study for a candidate: (trial, its network to train), or (trial, None) for one not to train: a
        candidate outside the latency band or a network trained before, told at once, or a network of ``batch`` in
        training now, added to its waiting trials (:meth:`hnanas.search.startup.StartupBatch.startup_batch`)."""
        ctx, h = self.ctx, self.ctx.cfg.halving
        if self.out_of_draws():  # the main loop stops before this; a start-up batch must not draw on and on
            raise self.out_of_draws_error()
        self.draws += 1
        trial = self.study.ask()
        g = self.suggest(trial)
        ms = ctx.table.predict(g, ctx.space).total_ms
        trial.set_user_attr("predicted_ms", ms)
        if self.budget_ms is not None:  # TPE models the feasible region (<= 0 is within [floor * T, T])
            outside = max(ms - self.budget_ms, h.floor * self.budget_ms - ms)
            trial.set_constraint("latency_outside_budget_ms", outside)
            if outside > 0:
                trial.set_user_attr("excess_ms", outside)
                self.log.append({"trial": trial.number, "epoch": 0, "predicted_ms": ms,
                                 "state": "over budget" if ms > self.budget_ms else "under floor"})
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return trial, None
        key = json.dumps(g.nodes)  # the pruned network: parameters of nodes it leaves out do not change it
        trial.set_user_attr("network", key)
        if batch is not None and key in batch.pending:  # in training now: told its scores once they are known
            trial.set_user_attr("same_as", batch.pending[key])
            batch.waiting.append((trial, batch.pending[key]))
            return trial, None
        twin = self.trained_twin(key)
        if twin is not None:  # training it again (same seed, same crops) would repeat the twin's numbers
            state, value = self.replay(trial, twin, ms)
            self.study.tell(trial, value, state=state)
            return trial, None
        return trial, g
