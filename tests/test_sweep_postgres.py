"""hnanas sweep shared by three worker processes through a real PostgreSQL server, one of them SIGKILLed in the
middle of a trial (issue 17).

Each worker runs the real CLI (``hnanas.cli.main``) with its own host name, as if on its own machine, so the
killed worker's trial can only be found stale through its silent heartbeat (``--stale-after``), never through
its process id. The study must end with every point done exactly once, the killed point finished by another
worker in the folder it left, no folder shared or half-written, and the same results as one worker alone on
SQLite: same genotypes, metrics and retrained weights, bit for bit (the measured latency is a timing, and
differs between any two runs).

Needs a server: ``HNANAS_TEST_POSTGRES`` is its URL (``.ci/postgres`` starts a throwaway one and sets it); without
it the test is skipped, unless ``HNANAS_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), which turns the skip into a
failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from _helpers import synthetic_table
from hnanas.data.synthetic import SynthParams, write_synthetic
from hnanas.nas.space import load_space
from hnanas.runs import load_checkpoint
from hnanas.sweep import study as st

REPO = Path(__file__).resolve().parents[1]
URL = os.environ.get("HNANAS_TEST_POSTGRES", "")
REQUIRED = os.environ.get("HNANAS_REQUIRE_POSTGRES") == "1"
LAMBDAS = "0,0.01,0.03,0.1,0.3,1"  # six points
STALE_S = 12.0  # the killed worker's trial is stale 12 s after its last heartbeat (live ones beat every 3 s)
# the tiny space, one epoch per stage, fp32 everywhere (the retrain's `auto` path is chosen by timing, which
# could make two runs of one point differ), one latency session
BUDGET = ["--space", "tiny", "--crop-size", "32", "--batch-size", "8", "--epochs", "1", "--precision", "fp32",
          "--retrain-epochs", "1", "--retrain-crop-size", "32", "--retrain-batch-size", "8", "--retrain-threads", "1",
          "--retrain-precision", "fp32", "--no-report"]
ATTRS = ("val_iou", "test_iou", "test_niou", "test_pd", "test_fa", "params", "macs", "predicted_ms")
WORKER = "import socket, sys; host = sys.argv.pop(1); socket.gethostname = lambda: host; " \
         "from hnanas.cli import main; sys.exit(main(sys.argv[1:]))"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"HNANAS_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres() -> str:
    if not URL:
        _unavailable("no PostgreSQL server: set HNANAS_TEST_POSTGRES=postgresql+psycopg://... (.ci/postgres starts "
                     "a throwaway one: .ci/postgres .venv/bin/python -m pytest tests/test_sweep_postgres.py)")
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(URL).connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - a missing driver or an unreachable server
        _unavailable(f"cannot reach HNANAS_TEST_POSTGRES={URL} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                     f"the driver comes with pip install -e '.[postgres]'")
    return URL


def worker(root: Path, host: str, args: list[str]) -> subprocess.Popen:
    """``hnanas ARGS`` in a new process that calls itself ``host``; its output goes to ``root/<host>.log``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HNANAS_CACHE": str(root / "cache"), "HNANAS_PROGRESS": "0",
           "OMP_NUM_THREADS": "1"}
    log = open(root / f"{host}.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", WORKER, host, *args], cwd=root, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    return proc


def wait_for_study(name: str, deadline: float):
    while True:
        try:
            return optuna.load_study(study_name=name, storage=URL)
        except KeyError:
            assert time.monotonic() < deadline, f"no worker created study {name}"
            time.sleep(0.2)


def kill_one_mid_trial(study, root: Path, workers: dict[str, subprocess.Popen], deadline: float):
    """SIGKILL the worker of the first trial that is past its first search epoch (search_state.pt written)."""
    while time.monotonic() < deadline:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            folder = root / t.user_attrs.get("run_dir", "-")
            host = (t.user_attrs.get("worker") or {}).get("host")
            if (folder / "search_state.pt").is_file() and not (folder / "retrain" / "metrics.json").exists():
                assert workers[host].pid == t.user_attrs["worker"]["pid"]
                workers[host].send_signal(signal.SIGKILL)
                workers[host].wait()
                return t.number, host
        time.sleep(0.1)
    raise AssertionError("no trial reached its first search checkpoint in time")


def results(trials, root: Path) -> dict[float, dict]:
    """Per λ: the recorded metrics, the genotype and the retrained weights of its COMPLETE trial."""
    out = {}
    for t in trials:
        folder = root / t.user_attrs["run_dir"]
        genotype = json.loads((folder / "genotype.json").read_text())
        weights = load_checkpoint(folder / "retrain" / "best.pt")["model_state"]
        out[t.params["latency_weight"]] = {"values0": t.values[0], **{k: t.user_attrs[k] for k in ATTRS},
                                           "nodes": genotype["nodes"], "weights": weights}
    return out


def assert_same(ours: dict, reference: dict) -> None:
    assert sorted(ours) == sorted(reference)
    for lam, mine in ours.items():
        ref = reference[lam]
        for key in ("values0", *ATTRS, "nodes"):
            assert mine[key] == ref[key], f"λ={lam}: {key} {mine[key]!r} here, {ref[key]!r} from one worker alone"
        assert mine["weights"].keys() == ref["weights"].keys()
        for name, tensor in mine["weights"].items():
            assert torch.equal(tensor, ref["weights"][name]), f"λ={lam}: retrained weights {name} differ"


def assert_folders_whole(study_dir: Path, run_dirs: list[Path], killed_dir: Path) -> None:
    """One folder per point, nothing else, every file complete (no epoch logged twice; no temp file of an
    unfinished write, but in the killed worker's folder, where the kill may have cut one short)."""
    assert len(set(run_dirs)) == len(run_dirs) == 6
    assert sorted(p for p in study_dir.iterdir() if p.is_dir()) == sorted(run_dirs)
    assert not [p for p in study_dir.rglob("*.tmp") if killed_dir not in p.parents], "a write was left unfinished"
    for folder in run_dirs:
        for log_csv in (folder / "search_log.csv", folder / "retrain" / "retrain_log.csv"):
            rows = [line.split(",")[:2] for line in log_csv.read_text().splitlines()[1:]]
            assert rows and len(rows) == len({tuple(r) for r in rows}), f"{log_csv}: an epoch logged twice"
        for name in ("genotype.json", "retrain/metrics.json", "retrain/latency.json"):
            json.loads((folder / name).read_text())
        load_checkpoint(folder / "retrain" / "last.pt")


@pytest.mark.slow
def test_three_workers_on_postgres_one_killed(postgres, tmp_path):
    start = time.monotonic()
    write_synthetic(tmp_path / "syn", SynthParams(n=16, size=64, seed=0))
    table = synthetic_table(load_space("tiny")).save(tmp_path / "tiny_cpu_t1.csv")
    (tmp_path / "retrain.yaml").write_text("train: {figure_images: 0}\nlatency: {sessions: 1}\n")
    name = f"pg_{uuid.uuid4().hex[:10]}"
    common = ["sweep", "--study", name, "--latency-weights", LAMBDAS, "--dataset", str(tmp_path / "syn"),
              "--table", str(table), "--retrain-config", "retrain.yaml", *BUDGET]
    shared = [*common, "--runs-dir", "runs", "--storage", postgres, "--stale-after", str(STALE_S), "--wait"]
    workers = {f"w{i}": worker(tmp_path, f"w{i}", shared) for i in range(3)}
    alone = worker(tmp_path, "alone", [*common, "--runs-dir", "alone"])  # the reference: one worker, SQLite
    try:
        study = wait_for_study(name, time.monotonic() + 120)
        killed, killed_host = kill_one_mid_trial(study, tmp_path, workers, time.monotonic() + 180)
        for host, proc in [*workers.items(), ("alone", alone)]:
            if host != killed_host:
                assert proc.wait(timeout=600) == 0, (tmp_path / f"{host}.log").read_text()
    finally:  # a failure above leaves no worker of this test running
        for proc in [*workers.values(), alone]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert workers[killed_host].returncode == -signal.SIGKILL

    trials = study.get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["latency_weight"] for t in done) == [0, 0.01, 0.03, 0.1, 0.3, 1]  # each exactly once
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.FAIL}  # none left WAITING or RUNNING
    # claims hold the server's advisory lock: no worker ever created a second trial for a point that had one
    assert not [t.number for t in trials if t.state == TrialState.PRUNED]
    # the killed trial: found stale by its heartbeat (marked FAIL, no error of its own), finished elsewhere
    dead = trials[killed]
    assert dead.state == TrialState.FAIL and "error" not in dead.user_attrs
    assert dead.datetime_complete.timestamp() >= dead.user_attrs["heartbeat"] + STALE_S  # silent that long first
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [killed]
    retry = next(t for t in done if t.user_attrs["point"] == dead.user_attrs["point"])
    assert retry.user_attrs["retry_of"] == killed and retry.user_attrs["worker"]["host"] != killed_host
    assert retry.user_attrs["run_dir"] == dead.user_attrs["run_dir"]  # it resumed the folder left behind
    assert_folders_whole(tmp_path / "runs" / name, [tmp_path / t.user_attrs["run_dir"] for t in done],
                         tmp_path / dead.user_attrs["run_dir"])

    reference = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'alone' / name}.db").get_trials()
    assert [t.state for t in reference] == [TrialState.COMPLETE] * 6
    assert_same(results(done, tmp_path), results(reference, tmp_path))
    print(f"3 workers on PostgreSQL, trial {killed} of {killed_host} killed: {time.monotonic() - start:.0f} s")


def test_claims_on_postgres_hold_an_advisory_lock_the_server_frees_if_its_worker_dies(postgres):
    assert st.serialised(postgres)
    order, held = [], threading.Event()

    def first() -> None:
        with st.storage_lock(postgres):
            held.set()
            time.sleep(0.5)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(10)
    with st.storage_lock(postgres):  # another session: waits for the first to let go
        order.append("second in")
    thread.join()
    assert order == ["first out", "second in"]

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from hnanas.sweep import study as st\n"
                               "with st.storage_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)",
                               postgres], env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not lock_is_free(postgres)
        holder.send_signal(signal.SIGKILL)  # a worker killed inside its claim must not block the others
        holder.wait()
        deadline = time.monotonic() + 30
        while not lock_is_free(postgres):
            assert time.monotonic() < deadline, "the killed worker's lock was never freed"
            time.sleep(0.1)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def lock_is_free(url: str) -> bool:
    """Whether another session can take the sweep's advisory lock now (it lets go at once if so)."""
    import sqlalchemy

    with sqlalchemy.create_engine(url).connect() as conn:
        free = conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": st.PG_LOCK_KEY}).scalar()
        if free:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": st.PG_LOCK_KEY})
        return bool(free)
