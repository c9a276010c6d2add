"""The ``halving`` strategy: train many latency-feasible candidates briefly, the better ones longer.

No supernet: each candidate is the stand-alone network of a genotype, trained from scratch with the search's
data, optimiser and loss (the one training loop), validated after every epoch. Its score after each epoch is the
search objective with the accuracy signal of ``halving.metric`` (validation loss by default, the signal that ranks
networks best at short budgets in the literature; ``bench/rank_quality.py`` measures it on this space; ``val_ap``,
the threshold-free average precision of the validation pixels, where every candidate's IoU is still 0) in place of
the supernet's segmentation loss: ``search_loss(signal, predicted latency, T)``, with the same ``latency_loss``
and ``latency_weight`` as the differentiable search. Optuna does the rest (``../shared/reference/search-eval.md``):

- its TPE sampler proposes candidates (one categorical per candidate edge and one per node's op), the first
  ``startup_trials`` at random; under a latency budget (``--latency-loss hinge --target-latency T``) a candidate
  the table prices above T (or below ``halving.floor`` x T) is not trained, and its distance outside the band is
  the trial's constraint (``Trial.set_constraint``), from which TPE learns the feasible region; with a floor the
  start-up candidates are drawn inside the band (``hnanas.latency.matched``);
- its successive-halving pruner stops a candidate at a rung (``min_epochs`` x ``eta``^k epochs) unless it is in
  the best 1/``eta`` of the candidates that reached that rung. With ``halving.rung_images`` set (the cpu preset),
  ``min_epochs`` and ``max_epochs`` are scaled to the training split's size first (:func:`rung_epochs`). The
  pruner is asynchronous: it stops nobody at a rung no one else has reached. With ``halving.sync_startup`` the
  start-up candidates are halved as one batch first (:mod:`hnanas.search.startup`).

A network proposed again (TPE repeats itself, and settings that differ only in nodes the network leaves out give
the same network) is not trained again: the trial gets its twin's scores (``same as N`` in ``trials.csv``) and
does not count among the ``trials`` candidates trained (:mod:`hnanas.search.proposals`).

With ``halving.time_limit_min`` the search ends early once its candidates' training has taken that long (no new
candidate, the one in training stopped after its epoch unless none has finished): on a slower machine it trains
fewer candidates, so its result depends on the machine.

The candidate with the best score after ``max_epochs`` is the result; with ``halving.final_seeds`` k > 1, the
finalist with the best mean final score over k runs (:mod:`hnanas.search.finalists`; where fewer than
``halving.finalists`` finished, the candidates stopped latest fill the finalists).
T defaults, as in the two-stage search, to the mean predicted latency of the search's starting distribution
(edges kept with probability 1/2, ops uniform). The study lives in ``halving.db`` in the run folder and
``trials.csv`` logs every epoch of every candidate: a killed search resumes (a candidate cut short is trained
again from its start; candidates proposed after the resume may differ from an uninterrupted run's, since the
sampler's random state is not stored). One process only.
"""

from __future__ import annotations

import logging

import optuna
from torch.utils.data import Subset

from hnanas.errors import ConfigError
from hnanas.nas.genotype import Genotype
from hnanas.progress import progress
from hnanas.search.candidate import train_candidate
from hnanas.search.context import SearchContext, reference_latency_ms
from hnanas.search.finalists import FINAL_FIELDS, rank_finalists
from hnanas.search.plots import draw_halving
from hnanas.search.proposals import DONE, Proposals, trained
from hnanas.search.rungs import HalvingPruner, nan_last, rung_epochs
from hnanas.search.startup import StartupBatch
from hnanas.search.strategy import Strategy, register_strategy
from hnanas.search.trial_params import genotype_of
from hnanas.train.loaders import eval_loader

log = logging.getLogger("hnanas.search")
STUDY = "halving.db"
# the search stops drawing after this many candidates per one to train (a narrow band, or TPE proposing networks
# already trained) and ends with the candidates it has (on the Intel Xeon the 14 ms NUAA-SIRST search drew 320
# for 15 trained, and used to fail there after 35 minutes of training)
DRAWS_PER_TRIAL = 20
FIELDS = ["trial", "epoch", "state", "predicted_ms", "train_loss", "val_loss", "val_iou", "val_niou",
          "init_log_grad_norm", "score", "seconds"]


def reach(t: optuna.trial.FrozenTrial) -> tuple[int, float]:
    """How far a trained candidate got, lower first: the furthest epoch it trained (negated), then its score there
    (NaN last). A complete candidate's is ``max_epochs`` and its final score (its value)."""
    last = max(t.intermediate_values)
    return -last, nan_last(t.intermediate_values[last])


@register_strategy
class Halving(Proposals, StartupBatch, Strategy):
    name = "halving"
    summary = "stand-alone candidates trained briefly, the better ones longer (Optuna TPE + successive halving)"

    def __init__(self, ctx: SearchContext):
        super().__init__(ctx)
        if ctx.d.world > 1:
            raise ConfigError("the halving strategy runs in one process (each candidate is small); run it without "
                              "torchrun")
        h = ctx.cfg.halving
        val = ctx.data.val if h.val_images is None else Subset(ctx.data.val, range(min(h.val_images,
                                                                                         len(ctx.data.val))))
        self.val_loader = eval_loader(val)
        self.budget_ms = ctx.cfg.latency_budget_ms
        self.target_ms = ctx.cfg.target_latency_ms or reference_latency_ms(ctx.space, ctx.table, ctx.cfg.seed)
        n_train = len(ctx.data.train)
        self.min_epochs, self.max_epochs = rung_epochs(h, n_train)  # the epochs every rung is counted in
        if h.rung_images is not None:
            log.info("halving: rungs of %d..%d epochs on %d training images (%d..%d epochs on %d)", self.min_epochs,
                     self.max_epochs, n_train, h.min_epochs, h.max_epochs, h.rung_images)
        self.log = ctx.run.csv_log("trials.csv", FIELDS, step_field="trial")
        self.final_log = ctx.run.csv_log("finalists.csv", FINAL_FIELDS, step_field="trial")
        self.study: optuna.Study | None = None
        self.spent_s = 0.0  # the candidates' summed epoch seconds (halving.time_limit_min), set by run()
        self.winner: optuna.trial.FrozenTrial | None = None  # the result, set by run()
        self.mean_scores: dict[int, float] = {}  # finalist -> mean final score over its runs (final_seeds > 1)

    # ------------------------------------------------------------------------------------------- the run
    def run(self, resume: bool) -> Genotype:
        h, cfg = self.ctx.cfg.halving, self.ctx.cfg
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=h.startup_trials)
        pruner = HalvingPruner(min_resource=self.min_epochs, reduction_factor=h.eta)
        self.study = study = optuna.create_study(
            study_name="halving", storage=f"sqlite:///{self.ctx.run.file(STUDY)}", load_if_exists=resume,
            direction="minimize", sampler=sampler, pruner=pruner)
        if not study.trials:
            for params in self.startup_candidates():
                study.enqueue_trial(params)
        killed = set()
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):  # cut short by a kill
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(t.system_attrs.get("fixed_params") or t.params)  # cut before its first suggest
            killed.add(t.number)
        if killed:  # their rows (and a torn last line): they are trained again from their start
            self.log.keep(lambda r: r.get("trial", "").isdigit() and int(r["trial"]) not in killed)
        n_trained = lambda: sum(map(trained, study.get_trials(deepcopy=False)))  # noqa: E731
        self.draws = len(study.trials)
        self.spent_s = sum(float(r["seconds"]) for r in self.log.rows() if r.get("seconds"))
        with progress(total=h.trials, initial=n_trained(), desc="halving", unit="candidate") as bar:
            if h.sync_startup and n_trained() < min(h.startup_trials, h.trials) and not self.out_of_time():
                self.startup_batch(min(h.startup_trials, h.trials) - n_trained(), bar)
            while n_trained() < h.trials and not self.out_of_time() and not self.out_of_draws():
                trial, g = self.draw()
                if g is not None:
                    state, value = self.evaluate(trial, g)
                    study.tell(trial, value, state=state)
                    bar.update()
        if self.out_of_draws() and n_trained() < h.trials:
            if n_trained() == 0:  # nothing to end with
                raise self.out_of_draws_error()
            log.warning("halving: %d candidates drawn, only %d of them new networks within the latency budget of %s "
                        "ms; the search ends with those (for all %d: raise --target-latency, or lower "
                        "halving.trials)", self.draws, n_trained(), self.budget_ms, h.trials)
        if self.out_of_time():
            log.warning("halving: time limit of %g min reached (%.1f min of candidates' training): %d of %d "
                        "candidates trained, so the result depends on this machine's speed; to train the rest: "
                        "hnanas search --out %s --resume --time-limit 0", h.time_limit_min, self.spent_s / 60,
                        n_trained(), h.trials, self.ctx.run.path)
        best = self.best()
        log.info("halving: best of the %d trained candidates is trial %d (score %.4f, %.2f ms predicted; trial "
                 "numbers count the draws outside the latency band too)", n_trained(), best.number, best.value,
                 best.user_attrs["predicted_ms"])
        self.winner = self.rerank()
        return genotype_of(self.ctx.space, self.winner.params, name="searched")

    def out_of_draws(self) -> bool:
        """Whether the search has drawn :data:`DRAWS_PER_TRIAL` x ``halving.trials`` candidates (most of them
        outside the band, or repeats)."""
        return self.draws >= DRAWS_PER_TRIAL * self.ctx.cfg.halving.trials

    def out_of_draws_error(self) -> ConfigError:
        n = sum(map(trained, self.study.get_trials(deepcopy=False)))
        return ConfigError(f"halving: {self.draws} candidates drawn, {n} of them new networks within the latency "
                           f"budget of {self.budget_ms} ms; raise --target-latency (or lower halving.trials: the "
                           f"sampler proposes networks already trained)")

    def out_of_time(self) -> bool:
        """Whether the candidates' training has used ``halving.time_limit_min`` (summed epoch seconds)."""
        limit = self.ctx.cfg.halving.time_limit_min
        return limit is not None and self.spent_s >= 60 * limit

    def finished_one(self) -> bool:
        """Whether some candidate (a new network, not a repeat) has trained ``max_epochs``."""
        return any(trained(t) for t in self.study.get_trials(deepcopy=False,
                                                              states=(optuna.trial.TrialState.COMPLETE,)))

    def candidates(self) -> list[optuna.trial.FrozenTrial]:
        """The candidates trained (complete or stopped), each with at least one epoch's score."""
        return [t for t in self.study.get_trials(deepcopy=False, states=DONE) if t.intermediate_values and trained(t)]

    def best(self) -> optuna.trial.FrozenTrial:
        """The complete candidate with the lowest score; if every candidate was stopped, the best of those that
        trained longest (:func:`reach`)."""
        return min(self.candidates(), key=reach)

    def finalists(self) -> list[optuna.trial.FrozenTrial]:
        """The best ``halving.finalists`` candidates that trained ``max_epochs``, best first (by the search's run);
        where fewer finished, the candidates stopped latest fill the list (:func:`reach`: the furthest epoch
        reached first, then the score there): a lone finisher ranked over more runs against nobody would be no
        ranking (a search whose first candidate went through every rung unopposed, or that ran out of time, has
        one)."""
        return sorted(self.candidates(), key=reach)[:self.ctx.cfg.halving.finalists]

    def rerank(self) -> optuna.trial.FrozenTrial:
        """The result: the best candidate of the search's runs, or, with ``halving.final_seeds`` > 1, the finalist
        with the best mean final score over more runs (:func:`hnanas.search.finalists.rank_finalists`)."""
        h = self.ctx.cfg.halving
        finalists = self.finalists()
        if h.final_seeds == 1 or len(finalists) < 2:
            return self.best()

        def train(t: optuna.trial.FrozenTrial, k: int):
            g = genotype_of(self.ctx.space, t.params)
            return self.train(g, t.user_attrs["predicted_ms"], desc=f"finalist {t.number} run {k}", run=k)

        winner, self.mean_scores = rank_finalists(finalists, h.final_seeds, self.final_log, self.max_epochs, train)
        return winner

    def search_run(self, t: optuna.trial.FrozenTrial) -> list[dict]:
        """The log rows of candidate ``t``'s search run: ``trials.csv``'s, or, for a finalist the pruner had stopped,
        its run 0 trained on to ``max_epochs`` in ``finalists.csv``."""
        rows = [r for r in self.log.rows() if int(r["trial"]) == t.number]
        if t.state != optuna.trial.TrialState.COMPLETE:
            rows = [r for r in self.final_log.rows() if r["trial"] == str(t.number) and r["run"] == "0"] or rows
        return rows

    def info(self) -> dict:
        best = self.winner
        rows = self.search_run(best)
        halving = {
            "trained": sum(map(trained, self.study.trials)),
            "same_as_earlier": sum("same_as" in t.user_attrs for t in self.study.get_trials(states=DONE)),
            "drawn": sum(t.state != optuna.trial.TrialState.WAITING for t in self.study.trials),
            "best_trial": best.number, "best_epochs": len(rows),
            "best_score": (best.intermediate_values[max(best.intermediate_values)]
                           if best.state == optuna.trial.TrialState.COMPLETE else float(rows[-1]["score"])),
            "target_ms": self.target_ms,
            "metric": self.ctx.cfg.halving.metric, "candidate_minutes": round(self.spent_s / 60, 2),
            "time_limited": self.out_of_time(), "out_of_draws": self.out_of_draws(),
            **({"final_seeds": self.ctx.cfg.halving.final_seeds, "finalists_mean_score": self.mean_scores}
               if self.mean_scores else {})}
        return {"final_val_iou": float(rows[-1]["val_iou"]), "best_val_iou": max(float(r["val_iou"]) for r in rows),
                "halving": halving}

    def figures(self) -> None:
        draw_halving(self.log.rows(), self.winner.number, self.ctx.run.file("halving.png"))

    # ------------------------------------------------------------------------------------------ pieces
    def scores_at(self, epoch: int) -> list[float]:
        """The scores at ``epoch`` of the candidates trained so far that reached it."""
        return [t.intermediate_values[epoch] for t in self.candidates() if epoch in t.intermediate_values]

    def evaluate(self, trial: optuna.Trial, g: Genotype) -> tuple[optuna.trial.TrialState, float | None]:
        """Train the trial's candidate epoch by epoch until the pruner stops it or ``max_epochs``."""
        for row in self.train(g, trial.user_attrs["predicted_ms"], desc=f"candidate {trial.number}"):
            trial.report(row["score"], row["epoch"])
            self.spent_s += row["seconds"]
            last = row["epoch"] == self.max_epochs
            timed_out = not last and self.out_of_time() and self.finished_one()
            stop = timed_out or (not last and trial.should_prune())
            row["state"] = ("stopped (time limit)" if timed_out else "stopped" if stop
                            else "complete" if last else "running")
            self.log.append({"trial": trial.number, **row})
            if stop:
                return optuna.trial.TrialState.PRUNED, None
        return optuna.trial.TrialState.COMPLETE, row["score"]

    def train(self, g: Genotype, ms: float, desc: str, run: int = 0):
        """The candidate's epochs (:func:`hnanas.search.candidate.train_candidate`), ``max_epochs`` of them."""
        return train_candidate(self.ctx, g, ms, epochs=self.max_epochs, val_loader=self.val_loader,
                               target_ms=self.target_ms, desc=desc, run=run)
