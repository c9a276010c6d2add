"""hnanas sweep: the study bookkeeping with a stand-in for search + retrain (failures, reruns, stale trials,
claims), then real tiny sweeps: two worker processes on one SQLite storage, and a killed worker's point resumed."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from _helpers import synthetic_table
from hnanas.cli import build_parser
from hnanas.cli.sweep import config_from_args
from hnanas.data.synthetic import SynthParams, write_synthetic
from hnanas.errors import HnanasError
from hnanas.nas.space import load_space
from hnanas.sweep import study as st
from hnanas.sweep import run as sw
from retrain_fixtures import hnanas_process

TINY = ["--space", "tiny", "--crop", "32", "--batch-size", "8", "--epochs", "2", "--retrain-epochs", "2",
        "--retrain-crop-size", "32", "--retrain-batch-size", "4", "--retrain-threads", "1"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    write_synthetic(root / "syn", SynthParams(n=40, size=64, seed=0))
    table = synthetic_table(load_space("tiny")).save(root / "tiny_cpu_t1.csv")
    return {"root": root, "data": root / "syn", "table": table}


def sweep_args(assets, runs: Path, study: str, values: str, *extra: str) -> list[str]:
    return ["sweep", "--study", study, "--latency-weights", values, "--dataset", str(assets["data"]), "--table",
            str(assets["table"]), *TINY, "--runs-dir", str(runs), *extra]


def sweep_config(assets, runs, study, values, *extra):
    return config_from_args(build_parser().parse_args(sweep_args(assets, runs, study, values, *extra)))


def load(cfg):
    return optuna.load_study(study_name=cfg.study, storage=cfg.storage_url)


@pytest.fixture
def fake_points(monkeypatch):
    """search + retrain replaced: λ=0.1 fails, others give val IoU 0.5 - λ/10 and latency 1 + λ."""
    calls = []

    def run_point(cfg, point, run_dir):
        calls.append((point.value, run_dir))
        if point.value == 0.1 and not getattr(run_point, "fixed", False):
            raise HnanasError("boom")
        return [0.5 - point.value / 10, 1 + point.value], {"val_iou": 0.5 - point.value / 10, "test_iou": 0.4}

    monkeypatch.setattr(sw, "run_point", run_point)
    return run_point, calls


def test_sweep_records_failures_continues_and_reruns(assets, tmp_path, fake_points):
    run_point, calls = fake_points
    cfg = sweep_config(assets, tmp_path / "runs", "s", "0.01,0.1,1")
    assert cfg.storage_url == f"sqlite:///{tmp_path / 'runs' / 's.db'}" and cfg.retrain_changes["train.epochs"] == 2
    first = sw.run_sweep(cfg, max_trials=1, report=False)  # --trials bounds this invocation
    assert [o.state for o in first.outcomes] == ["complete"] and first.states["λ=0.1"] == "pending"
    result = sw.run_sweep(cfg, report=False)
    assert [(o.point, o.state) for o in result.outcomes] == [("λ=0.1", "failed"), ("λ=1", "complete")]
    assert result.states == {"λ=0.01": "done", "λ=0.1": "failed", "λ=1": "done"}
    trials = load(cfg).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["error"] == "HnanasError: boom" and trials[0].values == [0.499, 1.01]
    assert trials[2].user_attrs["run_dir"] == str(tmp_path / "runs" / "s" / "trial_2_l1")
    assert trials[2].user_attrs["worker"]["host"] == socket.gethostname() and trials[2].user_attrs["test_iou"] == 0.4
    assert "--retry-failed" in result.summary()
    assert sw.run_sweep(cfg, report=False).outcomes == []  # failed points are skipped, done ones kept
    run_point.fixed = True
    again = sw.run_sweep(sweep_config(assets, tmp_path / "runs", "s", "0.01,0.1,1", "--retry-failed"), report=False)
    assert [(o.point, o.state) for o in again.outcomes] == [("λ=0.1", "complete")]
    assert len(calls) == 4 and len(load(cfg).get_trials()) == 4


def test_a_claim_creates_its_trial_running_with_its_point_not_through_the_queue(assets, tmp_path):
    """Each claim makes its own RUNNING trial in one insert: a trial someone left in Optuna's queue is not taken
    (with several workers, asking from the queue could pop another worker's trial and strand one WAITING)."""
    cfg = sweep_config(assets, tmp_path / "runs", "q", "0.3,1")
    study = st.open_study(cfg.storage_url, cfg.study, cfg.signature())
    study.enqueue_trial({"latency_weight": 1.0})  # e.g. a stranded one from before
    claimed = sw._claim(study, cfg, set())
    trial, point, run_dir = claimed
    frozen = load(cfg).get_trials()
    assert [t.state for t in frozen] == [TrialState.WAITING, TrialState.RUNNING] and point.value == 0.3
    assert frozen[1].params == {"latency_weight": 0.3} and frozen[1].number == trial.number == 1
    assert frozen[1].user_attrs["point"] == "l0.3" and frozen[1].user_attrs["run_dir"] == str(run_dir)
    assert frozen[1].user_attrs["worker"] == st.worker_attr() and run_dir.name == "trial_1_l0.3"
    assert st.serialised(cfg.storage_url) and st.serialised("postgresql+psycopg://u@h/db")
    assert not st.serialised("mysql+pymysql://u@h/db")


def test_interrupted_trials_are_rerun_in_their_folder(assets, tmp_path, fake_points):
    _, calls = fake_points
    cfg = sweep_config(assets, tmp_path / "runs", "i", "0.3,1,3", "--stale-after", "60")
    study = st.open_study(cfg.storage_url, cfg.study, cfg.signature())
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmp_path / "runs" / "i" / "trial_0_l0.3"
    folder.mkdir(parents=True)
    for value, worker, beat in ((0.3, {"host": socket.gethostname(), "pid": dead.pid}, time.time()),  # dead here
                                (1.0, {"host": "elsewhere", "pid": 1}, time.time() - 120),  # silent elsewhere
                                (3.0, {"host": "elsewhere", "pid": 1}, time.time())):  # alive elsewhere
        trial = st.create_trial(study, st.SweepPoint("latency_weight", value))
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("heartbeat", beat)
        trial.set_user_attr("run_dir", str(folder) if value == 0.3 else str(tmp_path / "gone"))
    result = sw.run_sweep(cfg, report=False)
    assert [o.point for o in result.outcomes] == ["λ=0.3", "λ=1"]  # λ=3 is someone else's, still running
    assert calls[0] == (0.3, folder) and calls[1][1] == tmp_path / "runs" / "i" / "trial_4_l1"
    trials = load(cfg).get_trials()
    assert [t.state for t in trials[:3]] == [TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING]
    assert trials[3].user_attrs["retry_of"] == 0 and "error" not in trials[0].user_attrs
    assert result.states["λ=3"] == "running"


def test_the_lowest_live_trial_owns_a_point():
    now = time.time()
    me = {"host": socket.gethostname(), "pid": st.worker_attr()["pid"], "started": st.worker_attr()["started"]}

    def trial(number, state, value=0.1, beat=now):
        return SimpleNamespace(number=number, state=state, params={"latency_weight": value},
                               user_attrs={"worker": me, "heartbeat": beat}, datetime_start=None)

    point = st.SweepPoint("latency_weight", 0.1)
    assert st.owner([trial(3, TrialState.RUNNING), trial(2, TrialState.RUNNING)], point, 60).number == 2
    assert st.owner([trial(1, TrialState.RUNNING, beat=now - 100), trial(2, TrialState.RUNNING)], point, 60).number == 2
    assert st.owner([trial(1, TrialState.RUNNING), trial(5, TrialState.COMPLETE)], point, 60).number == 5
    assert st.owner([trial(1, TrialState.RUNNING, value=0.2)], point, 60) is None
    assert st.point_state([trial(1, TrialState.PRUNED)], point, 60) == ("pending", None)


def test_a_live_trial_beats_often_enough_for_a_short_stale_after(assets, tmp_path, monkeypatch):
    """--stale-after below the 30 s beat must not make a running trial look dead to other workers."""
    assert st.heartbeat_interval(600) == st.HEARTBEAT_S and st.heartbeat_interval(8) == 2
    cfg = sweep_config(assets, tmp_path / "runs", "b", "0.1", "--stale-after", "0.6")
    seen = []

    def run_point(cfg, point, run_dir):
        time.sleep(1.5)
        running = load(cfg).get_trials(states=(TrialState.RUNNING,))
        seen.extend(st.is_stale(t, cfg.stale_after) for t in running)
        return [0.5, 1.0], {}

    monkeypatch.setattr(sw, "run_point", run_point)
    assert [o.state for o in sw.run_sweep(cfg, report=False).outcomes] == ["complete"] and seen == [False]


def test_a_waiting_worker_takes_over_a_dead_workers_point(assets, tmp_path, fake_points):
    _, calls = fake_points
    cfg = sweep_config(assets, tmp_path / "runs", "w", "0.3,1", "--stale-after", "1", "--wait")
    study = st.open_study(cfg.storage_url, cfg.study, cfg.signature())
    trial = st.create_trial(study, st.SweepPoint("latency_weight", 1.0))  # another machine's, beating until now
    trial.set_user_attr("worker", {"host": "elsewhere", "pid": 1})
    trial.set_user_attr("heartbeat", time.time())
    result = sw.run_sweep(cfg, report=False)  # runs λ=0.3, then waits until λ=1 falls silent and takes it over
    assert [(o.point, o.state) for o in result.outcomes] == [("λ=0.3", "complete"), ("λ=1", "complete")]
    trials = load(cfg).get_trials()
    assert trials[0].state == TrialState.FAIL and trials[2].user_attrs.get("retry_of") is None  # no folder left
    assert [c[0] for c in calls] == [0.3, 1.0] and result.states == {"λ=0.3": "done", "λ=1": "done"}


def test_a_missing_database_driver_names_its_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(HnanasError, match=r"driver \(psycopg\) is not installed; pip install 'hnanas\[postgres\]'"):
        st._storage("postgresql+psycopg://u@localhost/db")
    with pytest.raises(HnanasError, match=r"driver \(psycopg2\) is not installed; pip install psycopg2-binary"):
        st._storage("postgresql+psycopg2://u@localhost/db")


def test_sweep_refuses_mismatched_reruns_and_bad_input(assets, tmp_path, fake_points):
    sw.run_sweep(sweep_config(assets, tmp_path / "runs", "m", "0.01"), report=False)
    with pytest.raises(HnanasError, match="search.stage1.epochs was 2, now 3"):
        sw.run_sweep(sweep_config(assets, tmp_path / "runs", "m", "0.01", "--epochs", "3"), report=False)
    assert "train.precision" not in sweep_config(assets, tmp_path / "runs", "m", "0.1").retrain_changes  # signature kept
    assert sweep_config(assets, tmp_path / "runs", "m", "0.1", "--retrain-precision", "fp32").retrain_changes[
        "train.precision"] == "fp32"
    with pytest.raises(HnanasError, match="--stale-after must be > 0"):
        sweep_config(assets, tmp_path / "runs", "m", "0.1", "--stale-after", "0")
    with pytest.raises(HnanasError, match="repeated values"):
        sweep_config(assets, tmp_path / "runs", "m", "0.1,0.1")
    with pytest.raises(HnanasError, match="must be letters"):
        sweep_config(assets, tmp_path / "runs", "../m", "0.1")
    with pytest.raises(HnanasError, match="--objective-latency predicted"):
        sw.run_sweep(sweep_config(assets, tmp_path / "runs", "j", "0.1", "--device", "jetson"), report=False)
    with pytest.raises(HnanasError, match="--storage nosuchdb://x: cannot open it"):
        sw.run_sweep(sweep_config(assets, tmp_path / "runs", "j", "0.1", "--storage", "nosuchdb://x"), report=False)


def test_two_workers_share_one_sqlite_study(assets, tmp_path):
    """Real tiny search + retrain per point, in two processes that must not run the same λ twice."""
    args = sweep_args(assets, Path("runs"), "two", "0.01,1")
    workers = [hnanas_process(args, tmp_path) for _ in range(2)]
    outs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0, err
    cfg = sweep_config(assets, tmp_path / "runs", "two", "0.01,1")
    trials = load(cfg).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # no duplicate, nothing stood down
    assert sorted(t.params["latency_weight"] for t in trials) == [0.01, 1.0]
    for t in trials:
        folder = tmp_path / t.user_attrs["run_dir"]
        metrics = json.loads((folder / "retrain" / "metrics.json").read_text())
        assert t.values[0] == metrics["val_iou"] and t.user_attrs["test_iou"] == metrics["iou"]
        assert t.values[1] == json.loads((folder / "retrain" / "latency.json").read_text())["cpu"]["measured_ms"]
    index = (tmp_path / "runs" / "two" / "report" / "index.md").read_text()
    assert "2 run(s): 2 searched" in index and "figures/optuna_pareto_front.png" in index
    assert (tmp_path / "runs" / "two" / "report" / "figures" / "pareto_cpu.png").is_file()


def test_a_killed_worker_is_resumed_by_a_rerun(assets, tmp_path, monkeypatch):
    args = sweep_args(assets, Path("runs"), "kill", "0.3")
    proc = hnanas_process(args, tmp_path)
    state = tmp_path / "runs" / "kill" / "trial_0_l0.3" / "search_state.pt"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists(), proc.stderr.read()
    monkeypatch.chdir(tmp_path)
    result = sw.run_sweep(sweep_config(assets, Path("runs"), "kill", "0.3"))
    assert [o.state for o in result.outcomes] == ["complete"] and result.report is not None
    trials = load(sweep_config(assets, tmp_path / "runs", "kill", "0.3")).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["run_dir"] == trials[0].user_attrs["run_dir"] and trials[1].user_attrs["retry_of"] == 0
    steps = [line.split(",")[0] for line in (state.parent / "search_log.csv").read_text().splitlines()[1:]]
    assert len(steps) == 4 and len(set(steps)) == 4  # the search continued: no epoch logged twice
