"""The halving strategy's finalists ranked over more runs (``halving.final_seeds`` k > 1).

One training run's validation score is a noisy estimate of a network's: the best ``halving.finalists`` candidates
that trained ``max_epochs`` are each trained k - 1 more times (other initial weights, other crops), every epoch
logged in ``finalists.csv``, and the one whose final score is best on average over its k runs is the result (a
finalist the pruner had stopped trains its search run again to ``max_epochs`` first, as run 0: the same weights
and crops, so the same epochs and then more). Where fewer than ``halving.finalists`` finished, the candidates
stopped latest fill the finalists (``Halving.finalists``). A resumed search trains only the runs the log lacks (a
run cut short by a kill is trained again from its start).
"""

from __future__ import annotations

import logging
import statistics
from typing import Callable, Iterator

import optuna

from hnanas.progress import progress
from hnanas.runs import CsvLog

log = logging.getLogger("hnanas.search")
FINAL_FIELDS = ["trial", "run", "epoch", "predicted_ms", "train_loss", "val_loss", "val_iou", "val_niou",
                "init_log_grad_norm", "score", "seconds"]
Train = Callable[[optuna.trial.FrozenTrial, int], Iterator[dict]]


def final_runs(final_log: CsvLog, max_epochs: int) -> dict[tuple[int, int], float]:
    """{(trial, run): final score} of the finalists' finished runs in ``final_log``; the rows of a run cut short
    by a kill are dropped from it (it is trained again from its start)."""
    last = str(max_epochs)
    finished = {(r["trial"], r["run"]): float(r["score"]) for r in final_log.rows()
                if r.get("epoch") == last and r.get("score")}
    final_log.keep(lambda r: (r.get("trial"), r.get("run")) in finished)
    return {(int(t), int(k)): score for (t, k), score in finished.items()}


def rank_finalists(finalists: list[optuna.trial.FrozenTrial], final_seeds: int, final_log: CsvLog, max_epochs: int,
                   train: Train) -> tuple[optuna.trial.FrozenTrial, dict[int, float]]:
    """(the finalist with the best mean final score, {finalist: mean final score}) over each one's search run
    (a complete trial's value; a stopped one's run 0, its search run trained again to ``max_epochs``) and
    runs 1 .. ``final_seeds`` - 1, those the log lacks trained with ``train(trial, run)`` (which yields each epoch's
    row, ``score`` among its fields)."""
    runs = final_runs(final_log, max_epochs)
    first = {t.number: int(t.state == optuna.trial.TrialState.COMPLETE) for t in finalists}  # run 0 done already
    todo = [(t, k) for t in finalists for k in range(first[t.number], final_seeds) if (t.number, k) not in runs]
    total = sum(final_seeds - first[t.number] for t in finalists)
    with progress(total=total, initial=total - len(todo), desc="finalists", unit="run") as bar:
        for t, k in todo:
            for row in train(t, k):
                final_log.append({"trial": t.number, "run": k, **row})
            runs[(t.number, k)] = row["score"]
            bar.update()
    means = {}
    for t in finalists:
        scores = ([t.value] if first[t.number] else []) + [runs[(t.number, k)] for k in range(first[t.number],
                                                                                              final_seeds)]
        means[t.number] = statistics.fmean(scores)
        log.info("halving: finalist %d: final scores %s, mean %.4f", t.number, " ".join(f"{v:.4f}" for v in scores),
                 means[t.number])
    winner = min(finalists, key=lambda t: means[t.number])
    log.info("halving: candidate %d has the best mean over %d runs", winner.number, final_seeds)
    return winner, means
