"""Search strategies are plug-ins: one registry, the same run folder whatever the strategy, clear errors."""

from __future__ import annotations

import csv
import json
import random

import pytest

from _helpers import synthetic_table
from hnanas.data.synthetic import SynthParams, write_synthetic
from hnanas.errors import ConfigError, HnanasError
from hnanas.fileio import read_yaml
from hnanas.latency.table import LatencyTable
from hnanas.nas.genotype import named_genotypes, sample_genotype
from hnanas.nas.space import load_space
from hnanas.pipeline.sources import read_search_run
from hnanas.search.config import HalvingConfig, preset_config, resolve_config
from hnanas.search.halving import rung_epochs
from hnanas.search.trial_params import param_space, params_of
from hnanas.search.run import run_search
from hnanas.search.signals import accuracy_signal
from hnanas.search.strategies import get_strategy, strategy_names
from hnanas.search.strategy import _STRATEGIES, Strategy, register_strategy


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("strategy")
    write_synthetic(root / "syn", SynthParams(n=24, size=64, seed=0))
    table = synthetic_table(load_space("tiny")).save(root / "tiny_cpu_t1.csv")
    return {"data": root / "syn", "table": table}


class Chain(Strategy):
    """A strategy that searches nothing: the space's chain topology with res3 (the interface at its smallest)."""

    name = "test-chain"
    summary = "returns chain_res3"

    def run(self, resume):
        self.ran = True
        return named_genotypes(self.ctx.space)["chain_res3"]

    def info(self):
        return {"chain": True}


def test_a_registered_strategy_writes_the_same_run_folder(assets, tmp_path):
    register_strategy(Chain)
    try:
        assert "two-stage" in strategy_names() and "test-chain" in strategy_names()
        cfg = resolve_config("quick", {"space": "tiny", "table": str(assets["table"]), "strategy": "test-chain",
                                       "data.dataset": str(assets["data"])})
        summary = run_search(cfg, tmp_path / "run")
    finally:
        _STRATEGIES.pop("test-chain")
    genotype = json.loads((tmp_path / "run" / "genotype.json").read_text())
    assert genotype["info"]["strategy"] == "test-chain" and genotype["info"]["chain"] is True
    assert genotype["info"]["predicted_latency_ms"] == pytest.approx(summary["predicted_latency_ms"])
    assert read_yaml(tmp_path / "run" / "config.yaml")["strategy"] == "test-chain"
    assert read_search_run(tmp_path / "run").space == "tiny"  # retrain reads it like any search run


def test_unknown_strategy_fails_before_anything_is_written(assets, tmp_path):
    cfg = resolve_config("quick", {"space": "tiny", "table": str(assets["table"]), "strategy": "nope",
                                   "data.dataset": str(assets["data"])})
    with pytest.raises(ConfigError, match="unknown search strategy 'nope'; choose one of: two-stage, halving"):
        run_search(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="registered twice"):
        register_strategy(get_strategy("two-stage"))


def _halving(assets, **changes):
    base = {"space": "tiny", "table": str(assets["table"]), "strategy": "halving", "data.dataset": str(assets["data"]),
            "data.crop_size": 32, "batch_size": 8, "precision": "fp32", "halving.trials": 5,
            "halving.min_epochs": 1, "halving.max_epochs": 3, "halving.eta": 3, "halving.startup_trials": 3}
    base.update(changes)
    return resolve_config("quick", base)


def test_halving_trains_candidates_briefly_and_the_better_ones_longer(assets, tmp_path):
    summary = run_search(_halving(assets), tmp_path / "h")
    info = json.loads((tmp_path / "h" / "genotype.json").read_text())["info"]
    assert info["strategy"] == "halving" and info["halving"]["trained"] == 5
    with open(tmp_path / "h" / "trials.csv") as f:
        log = list(csv.DictReader(f))
    epochs = {}
    for r in log:
        epochs[int(r["trial"])] = max(epochs.get(int(r["trial"]), 0), int(r["epoch"]))
    assert len(epochs) == 5 and max(epochs.values()) == 3 and min(epochs.values()) >= 1
    assert sorted(epochs.values()) != [3] * 5  # successive halving stopped some candidates early
    best = info["halving"]["best_trial"]
    assert epochs[best] == 3 and info["halving"]["best_epochs"] == 3
    last = [r for r in log if int(r["trial"]) == best][-1]
    csv_digits = 1e-5  # trials.csv holds 6 significant digits (runs.CsvLog), genotype.json the full float
    assert float(last["score"]) == pytest.approx(info["halving"]["best_score"], rel=csv_digits)
    assert float(last["val_iou"]) == pytest.approx(info["final_val_iou"], rel=csv_digits)
    assert info["best_val_iou"] == pytest.approx(max(float(r["val_iou"]) for r in log if int(r["trial"]) == best),
                                                 rel=csv_digits)
    assert float(last["predicted_ms"]) == pytest.approx(summary["predicted_latency_ms"], rel=1e-4)
    assert (tmp_path / "h" / "halving.png").is_file() and (tmp_path / "h" / "halving.db").is_file()


def test_halving_under_a_budget_never_trains_or_returns_an_over_budget_candidate(assets, tmp_path):
    space = load_space("tiny")
    budget = LatencyTable.load(assets["table"], space=space).predict(named_genotypes(space)["dnanet_res3"],
                                                                     space).total_ms
    summary = run_search(_halving(assets, **{"latency_loss": "hinge", "latency_weight": 1.0,
                                             "target_latency_ms": budget}), tmp_path / "b")
    assert summary["predicted_latency_ms"] <= budget
    with open(tmp_path / "b" / "trials.csv") as f:
        log = list(csv.DictReader(f))
    over = [r for r in log if r["state"] == "over budget"]
    assert all(float(r["predicted_ms"]) > budget and r["epoch"] == "0" for r in over)
    assert all(float(r["predicted_ms"]) <= budget for r in log if r["state"] != "over budget")


def test_halving_with_a_floor_trains_only_candidates_inside_the_band_and_ranks_by_best_val_iou(assets, tmp_path):
    space = load_space("tiny")
    budget = LatencyTable.load(assets["table"], space=space).predict(named_genotypes(space)["dnanet_res3"],
                                                                     space).total_ms
    summary = run_search(_halving(assets, **{"latency_loss": "hinge", "latency_weight": 1.0,
                                             "target_latency_ms": budget, "halving.floor": 0.5,
                                             "halving.metric": "best_val_iou"}), tmp_path / "f")
    assert 0.5 * budget <= summary["predicted_latency_ms"] <= budget
    with open(tmp_path / "f" / "trials.csv") as f:
        log = list(csv.DictReader(f))
    trained = [r for r in log if r["epoch"] != "0"]
    assert trained and all(0.5 * budget <= float(r["predicted_ms"]) <= budget for r in trained)
    assert all(float(r["predicted_ms"]) < 0.5 * budget for r in log if r["state"] == "under floor")
    # the 3 start-up candidates were drawn inside the band: the first three trials all trained
    assert {int(r["trial"]) for r in trained} >= {0, 1, 2}
    for trial in {r["trial"] for r in trained}:  # score = 1 - best IoU so far + a thousandth of the val loss
        rows = [r for r in trained if r["trial"] == trial]
        for k, r in enumerate(rows):
            best = max(float(q["val_iou"]) for q in rows[:k + 1])
            assert float(r["score"]) == pytest.approx(1 - best + 1e-3 * float(r["val_loss"]), abs=1e-5)


def test_halving_ap_signals_rank_by_the_validation_pixels_average_precision(assets, tmp_path, monkeypatch):
    import hnanas.search.candidate as candidate

    seen = []

    def evaluate(*args, average_precision=False, **kwargs):  # the real metrics, a known AP per validation
        seen.append(average_precision)
        return {**real(*args, **kwargs), "ap": 0.2 + 0.05 * len(seen)}

    real = candidate.evaluate
    monkeypatch.setattr(candidate, "evaluate", evaluate)
    assert accuracy_signal("val_ap", 0.5, 0.5, 0.0, 0.0, 0.3) == pytest.approx(0.7)
    assert accuracy_signal("val_ap", 0.5, 0.5, 0.0, 0.0, float("nan")) == 1.0  # no target pixel
    assert accuracy_signal("best_val_iou_ap", 0.5, 0.5, 0.1, 0.2, 0.3) == pytest.approx(0.8 + 7e-4)
    space = load_space("tiny")
    budget = LatencyTable.load(assets["table"], space=space).predict(named_genotypes(space)["dnanet_res3"],
                                                                     space).total_ms
    run_search(_halving(assets, **{"latency_loss": "hinge", "latency_weight": 1.0, "target_latency_ms": budget,
                                   "halving.floor": 0.5, "halving.metric": "best_val_iou_ap"}), tmp_path / "ap")
    with open(tmp_path / "ap" / "trials.csv") as f:
        trained = [r for r in csv.DictReader(f) if r["epoch"] != "0"]
    assert seen and all(seen) and len(trained) == len(seen)
    # inside the budget the score is the signal: 1 - the best IoU so far + a thousandth of 1 - the epoch's AP
    # (the validations ran in the order of the log's rows)
    for k, r in enumerate(trained):
        best = max(float(q["val_iou"]) for q in trained[:k + 1] if q["trial"] == r["trial"])
        ap = 0.2 + 0.05 * (k + 1)
        assert float(r["score"]) == pytest.approx(1 - best + 1e-3 * (1 - ap), abs=2e-6)  # 6 digits in the csv


def test_halving_best_val_iou_niou_ranks_by_the_best_mean_of_iou_and_niou_so_far(assets, tmp_path, monkeypatch):
    import hnanas.search.candidate as candidate

    seen = []

    def evaluate(*args, **kwargs):  # the real loss, known IoU and nIoU per validation, neither monotone
        seen.append(None)
        k = len(seen)
        return {**real(*args, **kwargs), "iou": 0.1 * (k % 4), "niou": 0.05 * ((3 * k) % 5)}

    real = candidate.evaluate
    monkeypatch.setattr(candidate, "evaluate", evaluate)
    assert accuracy_signal("best_val_iou_niou", 0.5, 0.5, 0.1, 0.2, best_iou_niou=0.3) == pytest.approx(0.7 + 5e-4)
    with pytest.raises(ValueError, match="best_iou_niou"):
        accuracy_signal("best_val_iou_niou", 0.5, 0.5, 0.1, 0.2)
    space = load_space("tiny")
    budget = LatencyTable.load(assets["table"], space=space).predict(named_genotypes(space)["dnanet_res3"],
                                                                     space).total_ms
    run_search(_halving(assets, **{"latency_loss": "hinge", "latency_weight": 1.0, "target_latency_ms": budget,
                                   "halving.floor": 0.5, "halving.metric": "best_val_iou_niou", "halving.trials": 3}),
               tmp_path / "mix")
    with open(tmp_path / "mix" / "trials.csv") as f:
        trained = [r for r in csv.DictReader(f) if r["epoch"] != "0"]
    assert len(trained) == len(seen) >= 3
    # inside the budget the score is the signal: 1 - the best (IoU + nIoU) / 2 so far of the candidate + a thousandth
    # of the epoch's validation loss; the log keeps both metrics (validations ran in the order of the log's rows)
    for k, r in enumerate(trained):
        iou, niou = 0.1 * ((k + 1) % 4), 0.05 * ((3 * (k + 1)) % 5)
        assert (float(r["val_iou"]), float(r["val_niou"])) == pytest.approx((iou, niou), abs=1e-6)
        best = max((float(q["val_iou"]) + float(q["val_niou"])) / 2 for q in trained[:k + 1] if q["trial"] == r["trial"])
        assert float(r["score"]) == pytest.approx(1 - best + 1e-3 * float(r["val_loss"]), abs=2e-6)


def test_halving_with_select_threshold_ranks_candidates_by_their_iou_at_the_threshold_they_choose(assets, tmp_path,
                                                                                                  monkeypatch):
    import hnanas.search.candidate as candidate

    seen = []

    def evaluate(*args, select_threshold=False, **kwargs):
        seen.append(select_threshold)
        return real(*args, select_threshold=select_threshold, **kwargs)

    real = candidate.evaluate
    monkeypatch.setattr(candidate, "evaluate", evaluate)
    cfg = _halving(assets, **{"halving.trials": 2, "halving.max_epochs": 1, "halving.metric": "val_iou",
                              "halving.select_threshold": True, "latency_loss": "hinge", "latency_weight": 1.0,
                              "target_latency_ms": 1e6})  # no latency term: the score is the signal
    run_search(cfg, tmp_path / "t")
    assert seen and all(seen)
    assert read_yaml(tmp_path / "t" / "config.yaml")["halving"]["select_threshold"] is True
    with open(tmp_path / "t" / "trials.csv") as f:
        trained = [r for r in csv.DictReader(f) if r["epoch"] != "0"]
    assert trained and all(float(r["score"]) == pytest.approx(1 - float(r["val_iou"]), abs=1e-5) for r in trained)


def test_a_target_relative_to_the_tables_prices_is_resolved_in_ms_and_bounds_the_search(assets, tmp_path):
    from hnanas.search.context import reference_latency_ms

    space = load_space("tiny")
    mean = reference_latency_ms(space, LatencyTable.load(assets["table"], space=space), seed=0)
    summary = run_search(_halving(assets, **{"latency_loss": "hinge", "latency_weight": 1.0,
                                             "target_latency_scale": 0.8, "halving.floor": 0.5}), tmp_path / "r")
    saved = read_yaml(tmp_path / "r" / "config.yaml")
    assert saved["target_latency_scale"] == 0.8 and saved["target_latency_ms"] == pytest.approx(0.8 * mean)
    assert 0.4 * mean <= summary["predicted_latency_ms"] <= 0.8 * mean
    with open(tmp_path / "r" / "trials.csv") as f:
        assert all(0.4 * mean <= float(r["predicted_ms"]) <= 0.8 * mean for r in csv.DictReader(f)
                   if r["epoch"] != "0")
    with pytest.raises(ConfigError, match="target_latency_scale must be positive"):
        resolve_config("cpu", {"target_latency_scale": 0})
    resolve_config("cpu", {"latency_loss": "hinge", "target_latency_scale": 0.4})  # a budget without ms


def test_halving_resumes_a_killed_search_and_retrains_the_cut_candidate(assets, tmp_path, monkeypatch):
    import optuna

    from hnanas.search.halving import Halving

    real = Halving.suggest
    calls = {"n": 0}

    def dies_on_the_third(self, trial):
        genotype = real(self, trial)
        calls["n"] += 1
        if calls["n"] == 3:  # as a kill in its first epoch: the trial stays RUNNING, a row of it in the log
            self.log.append({"trial": trial.number, "epoch": 1, "state": "running", "predicted_ms": 1.0})
            raise KeyboardInterrupt
        return genotype

    monkeypatch.setattr(Halving, "suggest", dies_on_the_third)
    cfg = _halving(assets)
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, tmp_path / "k")
    monkeypatch.setattr(Halving, "suggest", real)
    cut = optuna.load_study(study_name="halving", storage=f"sqlite:///{tmp_path / 'k' / 'halving.db'}").trials[2]
    assert cut.state == optuna.trial.TrialState.RUNNING
    run_search(cfg, tmp_path / "k", resume=True)
    trials = optuna.load_study(study_name="halving", storage=f"sqlite:///{tmp_path / 'k' / 'halving.db'}").trials
    assert trials[2].state == optuna.trial.TrialState.FAIL and trials[3].params == cut.params  # trained again
    assert sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials) == 5
    with open(tmp_path / "k" / "trials.csv") as f:
        assert all(r["trial"] != "2" for r in csv.DictReader(f))  # the cut candidate's rows were dropped
    assert json.loads((tmp_path / "k" / "genotype.json").read_text())["info"]["halving"]["trained"] == 5


def test_halving_ranks_its_finalists_by_their_mean_over_more_runs_and_resumes_them(assets, tmp_path, monkeypatch):
    from hnanas.search.halving import Halving

    real, started = Halving.train, []

    def dies_in_the_second_finalist_run(self, g, ms, desc, run=0):
        started.append(run)
        for row in real(self, g, ms, desc, run):
            yield row
            if run > 0 and sum(k > 0 for k in started) == 2:  # killed after that run's first epoch was logged
                raise KeyboardInterrupt

    monkeypatch.setattr(Halving, "train", dies_in_the_second_finalist_run)
    cfg = _halving(assets, **{"halving.trials": 6, "halving.max_epochs": 2, "halving.eta": 2,
                              "halving.final_seeds": 3, "halving.finalists": 2})
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, tmp_path / "r")
    monkeypatch.setattr(Halving, "train", real)
    run_search(cfg, tmp_path / "r", resume=True)
    with open(tmp_path / "r" / "trials.csv") as f:
        complete = {int(r["trial"]): r for r in csv.DictReader(f) if r["state"] == "complete"}
    assert len(complete) >= 3  # more complete candidates than finalists: the best two by the search's run go on
    top = sorted(complete, key=lambda t: float(complete[t]["score"]))[:2]
    with open(tmp_path / "r" / "finalists.csv") as f:
        rows = list(csv.DictReader(f))
    runs = sorted((int(r["trial"]), int(r["run"]), int(r["epoch"])) for r in rows)
    assert runs == sorted((t, k, e) for t in top for k in (1, 2) for e in (1, 2))  # the cut run trained once, again
    final = {(int(r["trial"]), int(r["run"])): float(r["score"]) for r in rows if r["epoch"] == "2"}
    means = {t: (float(complete[t]["score"]) + final[(t, 1)] + final[(t, 2)]) / 3 for t in top}
    info = json.loads((tmp_path / "r" / "genotype.json").read_text())["info"]["halving"]
    assert {int(t): v for t, v in info["finalists_mean_score"].items()} == pytest.approx(means)
    assert info["best_trial"] == min(means, key=means.get) and info["final_seeds"] == 3
    for t in top:  # other initial weights and crops: not the search's run again
        assert len({float(complete[t]["score"]), final[(t, 1)], final[(t, 2)]}) == 3


def test_halving_fills_its_finalists_with_the_candidates_stopped_latest_when_too_few_finished(assets, tmp_path):
    cfg = _halving(assets, **{"halving.final_seeds": 2, "halving.finalists": 3})
    run_search(cfg, tmp_path / "f")
    with open(tmp_path / "f" / "trials.csv") as f:
        log = list(csv.DictReader(f))
    last = {}  # candidate -> its last row (the epoch it stopped at, its score there)
    for r in log:
        last[int(r["trial"])] = r
    complete = sorted((t for t, r in last.items() if r["epoch"] == "3"), key=lambda t: float(last[t]["score"]))
    stopped = sorted((t for t, r in last.items() if r["epoch"] != "3"),
                     key=lambda t: (-int(last[t]["epoch"]), float(last[t]["score"])))
    assert 1 <= len(complete) < 3 and stopped  # fewer finishers than finalists: the fill is exercised
    fill = stopped[:3 - len(complete)]
    with open(tmp_path / "f" / "finalists.csv") as f:
        rows = list(csv.DictReader(f))
    runs = sorted({(int(r["trial"]), int(r["run"])) for r in rows})
    assert runs == sorted([(t, 1) for t in complete] + [(t, k) for t in fill for k in (0, 1)])
    for t in fill:  # run 0 is the search's run again, trained on to max_epochs: the same epochs, then more
        again = [r for r in rows if r["trial"] == str(t) and r["run"] == "0"]
        assert [r["epoch"] for r in again] == ["1", "2", "3"]
        before = [r for r in log if r["trial"] == str(t)]
        for a, b in zip(again, before):
            assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-4)
    final = {(int(r["trial"]), int(r["run"])): float(r["score"]) for r in rows if r["epoch"] == "3"}
    means = {t: (float(last[t]["score"]) + final[(t, 1)]) / 2 for t in complete}
    means |= {t: (final[(t, 0)] + final[(t, 1)]) / 2 for t in fill}
    info = json.loads((tmp_path / "f" / "genotype.json").read_text())["info"]
    assert {int(t): v for t, v in info["halving"]["finalists_mean_score"].items()} == pytest.approx(means, rel=1e-5)
    winner = min(means, key=means.get)
    assert info["halving"]["best_trial"] == winner and info["halving"]["best_epochs"] == 3


def test_halving_under_a_time_limit_starts_no_candidate_after_it_and_stops_the_one_in_training(assets, tmp_path,
                                                                                             monkeypatch):
    from hnanas.search.halving import Halving

    real = Halving.train

    def a_minute_an_epoch(self, *args, **kwargs):  # the clock made deterministic: every epoch takes 60 s
        for row in real(self, *args, **kwargs):
            yield {**row, "seconds": 60.0}

    monkeypatch.setattr(Halving, "train", a_minute_an_epoch)
    run_search(_halving(assets, **{"halving.time_limit_min": 4}), tmp_path / "t")
    info = json.loads((tmp_path / "t" / "genotype.json").read_text())["info"]["halving"]
    with open(tmp_path / "t" / "trials.csv") as f:
        rows = [(r["trial"], r["epoch"], r["state"]) for r in csv.DictReader(f)]
    # candidate 0 finishes its 3 epochs (3 min); candidate 1's first epoch reaches 4 min: it stops, none follows
    assert rows == [("0", "1", "running"), ("0", "2", "running"), ("0", "3", "complete"),
                    ("1", "1", "stopped (time limit)")]
    assert info["trained"] == 2 and info["best_trial"] == 0 and info["time_limited"] is True
    assert info["candidate_minutes"] == 4.0
    # a limit reached before any candidate has finished: the one in training finishes, so there is a result
    run_search(_halving(assets, **{"halving.time_limit_min": 0.5}), tmp_path / "u")
    info = json.loads((tmp_path / "u" / "genotype.json").read_text())["info"]["halving"]
    assert info["trained"] == 1 and info["best_trial"] == 0 and info["best_epochs"] == 3
    assert read_yaml(tmp_path / "u" / "config.yaml")["halving"]["time_limit_min"] == 0.5
    with pytest.raises(ValueError, match="time_limit_min > 0"):
        HalvingConfig(time_limit_min=0)


def test_a_search_the_time_limit_ended_trains_on_when_resumed_with_a_new_limit(assets, tmp_path, monkeypatch,
                                                                               caplog, capsys):
    import logging

    from hnanas.cli import main
    from hnanas.search.halving import Halving

    real = Halving.train

    def a_minute_an_epoch(self, *args, **kwargs):
        for row in real(self, *args, **kwargs):
            yield {**row, "seconds": 60.0}

    monkeypatch.setattr(Halving, "train", a_minute_an_epoch)
    out = tmp_path / "t"
    with caplog.at_level(logging.WARNING, logger="hnanas.search"):
        run_search(_halving(assets, **{"halving.time_limit_min": 4}), out)
    assert "2 of 5 candidates trained" in caplog.text and f"search --out {out} --resume --time-limit 0" in caplog.text
    with open(out / "trials.csv") as f:
        first = list(csv.DictReader(f))
    assert main(["search", "--out", str(out), "--resume", "--time-limit", "-1"]) == 2
    assert "--time-limit -1: give minutes > 0, or 0 for no limit" in capsys.readouterr().err
    assert read_yaml(out / "config.yaml")["halving"]["time_limit_min"] == 4

    assert main(["search", "--out", str(out), "--resume", "--time-limit", "0"]) == 0
    assert read_yaml(out / "config.yaml")["halving"]["time_limit_min"] is None  # the run records what it ran with
    info = json.loads((out / "genotype.json").read_text())["info"]["halving"]
    assert info["trained"] == 5 and info["time_limited"] is False
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[:len(first)] == first  # the first run's candidates stand as they were (candidate 1 stays stopped)
    assert len({r["trial"] for r in rows}) > len({r["trial"] for r in first})
    assert info["candidate_minutes"] == sum(float(r["seconds"]) for r in rows if r["seconds"]) / 60


def test_halving_out_of_draws_ends_with_the_candidates_it_trained(assets, tmp_path, monkeypatch, caplog):
    import logging

    import hnanas.search.halving as halving

    monkeypatch.setattr(halving, "DRAWS_PER_TRIAL", 0.6)  # 3 draws for 5 trials: the 3 start-up candidates
    with caplog.at_level(logging.WARNING):
        run_search(_halving(assets), tmp_path / "d")
    info = json.loads((tmp_path / "d" / "genotype.json").read_text())["info"]["halving"]
    assert info["trained"] == 3 and info["out_of_draws"] is True and info["best_trial"] in (0, 1, 2)
    said = [r.getMessage() for r in caplog.records if "candidates drawn" in r.getMessage()]
    assert len(said) == 1 and "3 candidates drawn, only 3 of them" in said[0] and "ends with those" in said[0]
    monkeypatch.setattr(halving, "DRAWS_PER_TRIAL", 0)  # nothing trained: nothing to end with, a clear error
    with pytest.raises(ConfigError, match="0 candidates drawn, 0 of them new networks"):
        run_search(_halving(assets), tmp_path / "e")
    assert not (tmp_path / "e").exists()  # refused before any work: nothing left behind


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync-startup"])
def test_halving_does_not_train_a_network_twice(assets, tmp_path, monkeypatch, sync):
    import optuna

    from hnanas.search.halving import Halving

    def same_network_twice(self):  # the second start-up candidate differs only in a node the network leaves out
        space = self.ctx.space
        g = next(g for g in map(lambda k: sample_genotype(space, k), range(100)) if len(g.nodes) < len(space.nodes))
        first = params_of(space, g, random.Random(0))
        second = dict(first)
        key, choices = next((key, choices) for key, node, _, choices in param_space(space) if node not in g.inputs)
        second[key] = next(c for c in choices if c != first[key])
        return [first, second]

    monkeypatch.setattr(Halving, "startup_candidates", same_network_twice)
    run_search(_halving(assets, **{"halving.sync_startup": sync}), tmp_path / "d")
    trials = optuna.load_study(study_name="halving", storage=f"sqlite:///{tmp_path / 'd' / 'halving.db'}").trials
    assert trials[1].user_attrs["same_as"] == 0 and trials[1].params != trials[0].params
    # with sync-startup the twin is proposed while trial 0 is in the batch: told its scores once trial 0 is told
    assert trials[1].intermediate_values == trials[0].intermediate_values and trials[1].state == trials[0].state
    assert trials[1].intermediate_values and trials[1].value == trials[0].value
    with open(tmp_path / "d" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["state"] for r in rows if r["trial"] == "1"] == ["same as 0"]  # logged, not trained
    info = json.loads((tmp_path / "d" / "genotype.json").read_text())["info"]["halving"]
    assert info["trained"] == 5 and info["same_as_earlier"] >= 1  # five different networks trained
    networks = [t.user_attrs["network"] for t in trials if t.state != optuna.trial.TrialState.FAIL
                and "same_as" not in t.user_attrs and "network" in t.user_attrs]
    assert len(networks) == len(set(networks)) == 5


def test_a_network_repeating_a_stopped_candidate_is_told_as_stopped():
    import optuna

    from hnanas.search.halving import Halving

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    first = study.ask()
    first.report(0.9, 1)
    first.report(0.8, 2)
    study.tell(first, state=optuna.trial.TrialState.PRUNED)  # stopped at its rung: Optuna keeps 0.8 as its value
    halving = Halving.__new__(Halving)  # replay needs only the log
    rows = []
    halving.log = type("Log", (), {"append": lambda self, row: rows.append(row)})()
    again = study.ask()
    state, value = halving.replay(again, study.trials[0], 1.0)
    study.tell(again, value, state=state)  # a value with PRUNED would be refused by Optuna
    repeat = study.trials[1]
    assert repeat.state == optuna.trial.TrialState.PRUNED and repeat.value == study.trials[0].value
    assert repeat.intermediate_values == {1: 0.9, 2: 0.8} and repeat.user_attrs["same_as"] == 0
    assert rows == [{"trial": 1, "epoch": 0, "predicted_ms": 1.0, "state": "same as 0"}]


def test_search_command_runs_the_halving_strategy(assets, tmp_path, capsys):
    from hnanas.cli import main

    args = ["search", "--strategy", "halving", "--space", "tiny", "--table", str(assets["table"]), "--dataset",
            str(assets["data"]), "--crop", "32", "--batch-size", "8", "--precision", "fp32", "--candidates", "3",
            "--signal", "val_iou", "--out", str(tmp_path / "cli")]
    assert main([*args, "--rungs", "1:2"]) == 2
    assert "--rungs '1:2': expected MIN:MAX:ETA" in capsys.readouterr().err
    assert main([*args, "--rungs", "1:2:2"]) == 0
    cfg = read_yaml(tmp_path / "cli" / "config.yaml")
    assert cfg["strategy"] == "halving" and cfg["halving"]["trials"] == 3 and cfg["halving"]["metric"] == "val_iou"
    assert (cfg["halving"]["min_epochs"], cfg["halving"]["max_epochs"], cfg["halving"]["eta"]) == (1, 2, 2)
    assert cfg["halving"]["rung_images"] is None  # epochs as given, whatever the split's size
    assert "genotype:" in capsys.readouterr().out


def test_the_cpu_preset_is_the_halving_search_with_retrains_optimiser_on_128px_crops():
    from hnanas.cli import build_parser
    from hnanas.cli.search import config_from_args
    from hnanas.pipeline.presets import build_config

    cfg = config_from_args(build_parser().parse_args(
        ["search", "--preset", "cpu", "--latency-loss", "hinge", "--latency-weight", "1", "--target-latency", "56",
         "--floor", "0.9"]))
    h = cfg.halving
    assert cfg.preset == "cpu" and cfg.strategy == "halving" and h.metric == "best_val_iou" and h.floor == 0.9
    assert (h.min_epochs, h.max_epochs, h.eta, h.trials) == (2, 8, 3, 16) and cfg.latency_budget_ms == 56
    # rungs are amounts of training: 2:8 epochs on NUDT-SIRST 50_50's 530 training images, 3:15 on NUAA-SIRST's 273
    assert h.rung_images == 530 and rung_epochs(h, 530) == (2, 8) and rung_epochs(h, 273) == (3, 15)
    assert rung_epochs(h, 1060) == (1, 4) and rung_epochs(h, 10_000) == (1, 1)  # at least one epoch
    assert rung_epochs(HalvingConfig(min_epochs=2, max_epochs=8), 273) == (2, 8)  # no rung_images: as given
    fixed = HalvingConfig(min_epochs=3, max_epochs=8, rung_images=530, scale_first_rung=False)
    assert [rung_epochs(fixed, n) for n in (530, 273, 1060, 10_000)] == [(3, 8), (3, 15), (3, 4), (3, 3)]
    with pytest.raises(ValueError, match="rung_images"):
        HalvingConfig(rung_images=0)
    given = config_from_args(build_parser().parse_args(["search", "--preset", "cpu", "--rungs", "2:8:3"])).halving
    assert given.rung_images is None and rung_epochs(given, 128) == (2, 8)  # --rungs: epochs as given (the demo)
    assert h.final_seeds == 1  # the search's own run decides (2: docs/results.md, over the preset's hour)
    assert h.time_limit_min == 55  # the preset keeps to its hour (docs/results.md: one search took 79 min)
    timed = config_from_args(build_parser().parse_args(["search", "--preset", "cpu", "--time-limit", "6"])).halving
    assert timed.time_limit_min == 6.0
    unlimited = config_from_args(build_parser().parse_args(["search", "--preset", "cpu", "--time-limit", "0"]))
    assert unlimited.halving.time_limit_min is None  # the same schedule on every machine
    assert preset_config("quick").halving.time_limit_min is None
    with pytest.raises(HnanasError, match="0 for no limit"):
        config_from_args(build_parser().parse_args(["search", "--preset", "cpu", "--time-limit", "-1"]))
    rel = config_from_args(build_parser().parse_args(["search", "--preset", "cpu", "--latency-loss", "hinge",
                                                       "--target-scale", "0.4", "--val-images", "16"]))
    assert rel.target_latency_scale == 0.4 and rel.target_latency_ms is None
    assert rel.val_images == 16 and rel.halving.val_images == 16
    two = config_from_args(build_parser().parse_args(["search", "--preset", "cpu", "--final-seeds", "2"])).halving
    assert (two.final_seeds, two.finalists) == (2, 2)  # the best two finishers ranked over two runs each
    assert h.sync_startup is False
    sync = config_from_args(build_parser().parse_args(["search", "--preset", "cpu", "--sync-startup"])).halving
    assert sync.sync_startup is True and sync.startup_trials == h.startup_trials
    assert h.grad_norm_weight == 0.0  # the preset does not weigh the initial gradient norm
    gn = config_from_args(build_parser().parse_args(["search", "--preset", "cpu", "--grad-norm-weight", "0.1"]))
    assert gn.halving.grad_norm_weight == 0.1 and gn.halving.grad_norm_batches == 3
    with pytest.raises(ValueError, match="final_seeds"):
        HalvingConfig(final_seeds=0)
    quick = build_config("quick", {"genotype": "dnanet_res3", "space": "rep_nested"})  # retrain's quick preset
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, h.min_lr, cfg.loss) == (
        quick.optim.name, quick.optim.lr, quick.optim.weight_decay, quick.optim.min_lr, quick.train.loss)
    assert cfg.val_images is None and cfg.data.target_prob == quick.data.target_prob
    assert (cfg.data.crop_size, cfg.batch_size) == (128, 8)
    with pytest.raises(ValueError, match="floor"):
        HalvingConfig(floor=1.0)
    with pytest.raises(ConfigError, match="halving.floor 0.9 bounds the halving strategy.s latency budget"):
        resolve_config("cpu", {"halving.floor": 0.9})  # add-linear: no budget for a floor to bound


def test_halving_halves_its_startup_candidates_as_one_batch_and_resumes_a_killed_batch(assets, tmp_path, monkeypatch):
    import optuna

    from hnanas.search.halving import Halving

    real, order = Halving.train, []

    def recorded(self, g, ms, desc, run=0):
        for row in real(self, g, ms, desc, run):
            order.append((int(desc.split()[1]), row["epoch"]))
            yield row

    monkeypatch.setattr(Halving, "train", recorded)
    cfg = _halving(assets, **{"halving.sync_startup": True})
    run_search(cfg, tmp_path / "s")
    # the 3 start-up candidates each train to the first rung (1 epoch) before any trains further; the best 1/3
    # of them goes on to the end (3 epochs); then the 2 TPE candidates as they come
    assert order[:3] == [(0, 1), (1, 1), (2, 1)] and [e for _, e in order[3:5]] == [2, 3]
    assert {k for k, _ in order[3:5]} < {0, 1, 2} and {k for k, _ in order[5:]} == {3, 4}
    trials = optuna.load_study(study_name="halving", storage=f"sqlite:///{tmp_path / 's' / 'halving.db'}").trials
    assert all("completed_rung_0" in t.system_attrs for t in trials[:3])  # the pruner compares later ones with them
    assert sorted(len(t.intermediate_values) for t in trials[:3]) == [1, 1, 3]
    with open(tmp_path / "s" / "trials.csv") as f:
        rows = [(int(r["trial"]), int(r["epoch"]), r["state"]) for r in csv.DictReader(f)]
    assert [t for t, _, _ in rows] == sorted(t for t, _, _ in rows)  # a batch's rows are written candidate by candidate
    assert sum(state == "complete" for t, _, state in rows if t < 3) == 1
    assert sum(state == "stopped" for t, _, state in rows if t < 3) == 2
    assert json.loads((tmp_path / "s" / "genotype.json").read_text())["info"]["halving"]["trained"] == 5

    def dies_in_the_second_rung(self, g, ms, desc, run=0):  # killed while the batch's best trains on
        for row in recorded(self, g, ms, desc, run):
            if row["epoch"] == 2:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(Halving, "train", dies_in_the_second_rung)
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, tmp_path / "k")
    log = tmp_path / "k" / "trials.csv"  # the batch was not told: none of its rows
    assert not log.is_file() or all(r["trial"] not in ("0", "1", "2") for r in csv.DictReader(open(log)))
    monkeypatch.setattr(Halving, "train", recorded)
    run_search(cfg, tmp_path / "k", resume=True)
    trials = optuna.load_study(study_name="halving", storage=f"sqlite:///{tmp_path / 'k' / 'halving.db'}").trials
    assert [t.state for t in trials[:3]] == [optuna.trial.TrialState.FAIL] * 3  # the whole batch trained again
    assert [t.params for t in trials[3:6]] == [t.params for t in trials[:3]]
    with open(tmp_path / "k" / "trials.csv") as f, open(tmp_path / "s" / "trials.csv") as g:
        again = [(r["epoch"], r["state"], r["val_iou"]) for r in csv.DictReader(f) if int(r["trial"]) in (3, 4, 5)]
        first = [(r["epoch"], r["state"], r["val_iou"]) for r in csv.DictReader(g) if int(r["trial"]) < 3]
    assert again == first  # the same batch, the same numbers
    assert json.loads((tmp_path / "k" / "genotype.json").read_text())["info"]["halving"]["trained"] == 5


def test_a_startup_batch_out_of_time_stops_the_rest_and_finishes_its_best(assets, tmp_path, monkeypatch):
    from hnanas.search.halving import Halving

    real = Halving.train

    def a_minute_an_epoch(self, *args, **kwargs):
        for row in real(self, *args, **kwargs):
            yield {**row, "seconds": 60.0}

    monkeypatch.setattr(Halving, "train", a_minute_an_epoch)
    run_search(_halving(assets, **{"halving.sync_startup": True, "halving.time_limit_min": 2}), tmp_path / "t")
    info = json.loads((tmp_path / "t" / "genotype.json").read_text())["info"]["halving"]
    with open(tmp_path / "t" / "trials.csv") as f:
        rows = [(r["trial"], r["epoch"], r["state"]) for r in csv.DictReader(f)]
    # candidates 0 and 1 reach the first rung in 2 min; candidate 2 is not trained; the better of 0 and 1 finishes
    assert ("2", "0", "not trained (time limit)") in rows and info["trained"] == 2 and info["time_limited"] is True
    assert info["best_trial"] in (0, 1) and info["best_epochs"] == 3 and info["candidate_minutes"] == 4.0
    assert sorted(r for r in rows if r[0] != "2") == sorted(
        [(str(info["best_trial"]), "1", "running"), (str(info["best_trial"]), "2", "running"),
         (str(info["best_trial"]), "3", "complete"), (str(1 - info["best_trial"]), "1", "stopped")])


def test_init_grad_norm_is_the_mean_log_gradient_norm_of_fixed_initialisations_and_keeps_the_rng():
    import math

    import torch

    from hnanas.nas.models import build_model, nested_spec
    from hnanas.search.proxies import INIT_SEED, grad_norm, init_grad_norm
    from hnanas.train.optim import build_train_loss

    space = load_space("tiny")
    g = named_genotypes(space)["dnanet_res3"]
    loss_fn = build_train_loss("softiou+bce")
    gen = torch.Generator().manual_seed(3)
    batches = [(torch.rand(2, 1, 32, 32, generator=gen), (torch.rand(2, 1, 32, 32, generator=gen) > 0.9).float())
               for _ in range(2)]
    build = lambda: build_model(nested_spec(space, g))  # noqa: E731
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    value = init_grad_norm(build, batches, loss_fn)
    assert torch.rand(1) == before  # the caller's random stream goes on as if nothing had been drawn
    logs = []
    for i, (x, y) in enumerate(batches):
        torch.manual_seed(INIT_SEED + i)
        logs.append(math.log(grad_norm(build(), x, y, loss_fn)))
    assert value == pytest.approx(sum(logs) / 2) and logs[0] != logs[1]
    assert init_grad_norm(build, batches, loss_fn) == value  # fixed seeds: the same network scores the same
    with pytest.raises(ValueError, match="at least one"):
        init_grad_norm(build, [], loss_fn)
    with pytest.raises(ValueError, match="grad_norm_weight"):
        HalvingConfig(grad_norm_weight=-0.1)


def test_halving_grad_norm_weight_adds_the_initial_log_gradient_norm_to_every_epochs_signal(assets, tmp_path):
    space = load_space("tiny")
    budget = LatencyTable.load(assets["table"], space=space).predict(named_genotypes(space)["dnanet_res3"],
                                                                     space).total_ms
    changes = {"latency_loss": "hinge", "latency_weight": 1.0, "target_latency_ms": budget, "halving.floor": 0.5,
               "halving.metric": "best_val_iou", "halving.trials": 3}
    rows = {}
    for w in (0.0, 0.5):
        run_search(_halving(assets, **changes, **{"halving.grad_norm_weight": w}), tmp_path / f"w{w}")
        with open(tmp_path / f"w{w}" / "trials.csv") as f:
            rows[w] = [r for r in csv.DictReader(f) if r["epoch"] != "0"]
    assert rows[0.0] and all(r["init_log_grad_norm"] == "" for r in rows[0.0])  # not computed at weight 0
    best = {}
    for r in rows[0.5]:
        best[r["trial"]] = max(best.get(r["trial"], 0.0), float(r["val_iou"]))
        # inside the budget the score is best_val_iou's signal + 0.5 x ln(grad norm at initialisation)
        assert float(r["score"]) == pytest.approx(1 - best[r["trial"]] + 1e-3 * float(r["val_loss"])
                                                  + 0.5 * float(r["init_log_grad_norm"]), abs=5e-6)
    per_trial = {}
    for r in rows[0.5]:
        per_trial.setdefault(r["trial"], set()).add(r["init_log_grad_norm"])
    assert all(len(v) == 1 for v in per_trial.values())  # one figure per candidate, computed before it trains
    assert len({next(iter(v)) for v in per_trial.values()}) == len(per_trial) >= 2  # networks differ
    # the proxy is drawn from its own seeds: the candidates train exactly as without it
    assert [(r["trial"], r["val_iou"], r["train_loss"]) for r in rows[0.5]][:1] == \
        [(r["trial"], r["val_iou"], r["train_loss"]) for r in rows[0.0]][:1]
