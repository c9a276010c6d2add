"""Successive halving's rungs and the synchronous batch (hnanas.search.rungs)."""

from __future__ import annotations

import random

import pytest
from optuna.pruners._successive_halving import _is_trial_promotable_to_next_rung
from optuna.study import StudyDirection

from hnanas.search.rungs import halve_batch, promotable, rung_steps


def test_rung_steps_are_the_pruners_rungs_below_the_last_epoch_then_it():
    assert rung_steps(3, 15, 3) == [3, 9, 15]  # NUAA-SIRST at the cpu preset
    assert rung_steps(2, 8, 3) == [2, 6, 8]  # NUDT-SIRST
    assert rung_steps(1, 9, 3) == [1, 3, 9] and rung_steps(1, 3, 3) == [1, 3] and rung_steps(2, 2, 3) == [2]
    assert rung_steps(1, 8, 2) == [1, 2, 4, 8]


def test_promotable_is_optunas_rule_applied_to_a_whole_rung():
    rng = random.Random(0)
    for _ in range(500):
        competing = [rng.choice([0.1, 0.2, 0.3, rng.random()]) for _ in range(rng.randint(1, 12))]
        value, eta = rng.choice(competing), rng.randint(2, 4)
        assert promotable(value, competing, eta) == _is_trial_promotable_to_next_rung(
            value, list(competing), eta, StudyDirection.MINIMIZE)


def _curves(n):
    """Candidate k's score after epoch e: k / 10 - e / 100 (lower is better: candidate 0 is the best)."""
    return {k: (lambda e, k=k: k / 10 - e / 100) for k in range(n)}


def test_a_batch_trains_every_candidate_to_a_rung_before_any_trains_further():
    curves, calls = _curves(9), []

    def advance(k, epoch):
        calls.append((k, epoch))
        return curves[k](epoch)

    reached = halve_batch([4, 2, 7, 0, 8, 1, 6, 3, 5], advance, lambda epoch: [], 1, 9, 3)
    assert reached == {0: 9, 1: 3, 2: 3, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1}  # 9 -> best 3 -> best 1
    assert [e for _, e in calls] == [1] * 9 + [3] * 3 + [9]  # synchronous: rung by rung
    assert {k for k, e in calls if e == 3} == {0, 1, 2}


def test_a_batch_competes_with_the_scores_reported_before_it():
    curves = _curves(5)
    earlier = {1: [-1.0, -1.0, -1.0, -1.0], 3: []}  # four better candidates reached the first rung before
    reached = halve_batch([0, 1, 2], lambda k, e: curves[k](e), lambda e: earlier.get(e, []), 1, 3, 3)
    assert reached == {0: 1, 1: 1, 2: 1}  # none in the best 1/3 of 7: all stop, as the pruner would stop them
    reached = halve_batch([0, 1, 2], lambda k, e: curves[k](e), lambda e: [-1.0] if e == 1 else [], 1, 3, 3)
    assert reached == {0: 1, 1: 1, 2: 1}  # best 1 of 4 at the rung is the earlier one
    reached = halve_batch([0, 1, 2, 3, 4], lambda k, e: curves[k](e), lambda e: [-1.0] if e == 1 else [], 1, 3, 3)
    assert reached == {0: 3, 1: 1, 2: 1, 3: 1, 4: 1}  # best 2 of 6: the earlier one and candidate 0


def test_out_of_time_stops_the_candidates_not_yet_at_the_rung_and_the_best_finishes():
    curves, calls = _curves(6), []

    def advance(k, epoch):
        calls.append((k, epoch))
        return curves[k](epoch)

    reached = halve_batch([3, 5, 1, 4, 0, 2], advance, lambda e: [], 1, 9, 3, out_of_time=lambda: len(calls) >= 3)
    assert reached == {3: 1, 5: 1, 1: 9, 4: 0, 0: 0, 2: 0}  # 3 at the first rung, then only the best of them
    assert calls == [(3, 1), (5, 1), (1, 1), (1, 3), (1, 9)]
    reached = halve_batch([3, 5], lambda k, e: curves[k](e), lambda e: [], 1, 9, 3, out_of_time=lambda: True)
    assert reached == {3: 9, 5: 0}  # out of time from the start: one candidate still finishes


@pytest.mark.parametrize("eta", [2, 3, 4])
def test_a_fresh_batch_always_finishes_one_candidate(eta):
    rng = random.Random(eta)
    for n in range(1, 20):
        scores = {k: rng.random() for k in range(n)}
        reached = halve_batch(list(scores), lambda k, e: scores[k] - e / 1000, lambda e: [], 2, 8, eta)
        assert sum(e == 8 for e in reached.values()) >= 1 and reached[min(scores, key=scores.get)] == 8


def test_a_nan_score_never_goes_on_and_a_batch_beaten_by_earlier_scores_ends_without_error():
    nan = float("nan")
    assert not promotable(nan, [nan, 0.5], 2) and promotable(0.5, [nan, 0.5, 0.7], 3)
    scores = {0: nan, 1: 0.3, 2: 0.2}
    assert halve_batch([0, 1, 2], lambda k, e: scores[k], lambda e: [], 1, 9, 3) == {0: 1, 1: 1, 2: 9}
    # every batch candidate beaten at the first rung by earlier ones, the time out after it: nobody goes on
    reached = halve_batch([0, 1, 2], lambda k, e: scores[k], lambda e: [-1.0] * 6, 1, 9, 3,
                          out_of_time=lambda: False)
    assert reached == {0: 1, 1: 1, 2: 1}
    calls = []
    reached = halve_batch([1, 2], lambda k, e: calls.append(k) or scores[k], lambda e: [-1.0] * 6, 1, 9, 3,
                          out_of_time=lambda: len(calls) > 2)
    assert reached == {1: 1, 2: 1}


def test_the_promoted_candidates_train_on_best_first():
    calls = []
    scores = {0: 0.9, 1: 0.5, 2: 0.1, 3: 0.8, 4: 0.7, 5: 0.6}
    halve_batch(list(scores), lambda k, e: calls.append((k, e)) or scores[k] - e / 1000, lambda e: [], 1, 3, 3)
    assert calls[6:] == [(2, 3), (1, 3)]


def test_the_pruner_counts_no_failed_trial_at_its_rungs():
    import optuna

    from hnanas.search.rungs import HalvingPruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def study_with(pruner, killed: bool) -> bool:
        """Whether a candidate scoring 0.45 at the first rung goes on, after 0.4 and a network scoring 0.5 (with
        ``killed``: once cut short by a kill after registering it, told FAIL, then trained again)."""
        study = optuna.create_study(direction="minimize", pruner=pruner)
        for value, state in [(0.4, "done"), *([(0.5, "fail")] if killed else []), (0.5, "done")]:
            t = study.ask()
            t.report(value, 1)
            t.should_prune()
            study.tell(t, state=optuna.trial.TrialState.FAIL if state == "fail" else optuna.trial.TrialState.PRUNED)
        t = study.ask()
        t.report(0.45, 1)
        return not t.should_prune()

    # eta 2 over {0.4, 0.5, 0.45}: only the best goes on; Optuna's own pruner counts the killed 0.5 twice, which
    # makes room for a second
    assert not study_with(optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2), killed=False)
    assert study_with(optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2), killed=True)
    assert not study_with(HalvingPruner(min_resource=1, reduction_factor=2), killed=True)
    assert not study_with(HalvingPruner(min_resource=1, reduction_factor=2), killed=False)
