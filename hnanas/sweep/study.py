"""The Optuna side of a sweep: the study, which sweep points are done or taken, claiming one, and telling
live workers from dead ones.

Any Optuna storage URL works (``sqlite:///runs/S.db``, ``postgresql://user:pw@host/db``, ``mysql://...``), so
workers on several machines can share one study. A *point* (one λ or one target) is claimed by creating a trial
with its value as the parameter; the lowest-numbered live trial of a point owns it and any later one stands down
(``PRUNED``, user attr ``duplicate_of``). Claims are serialised on SQLite by a lock file beside the database and on
PostgreSQL by a server-side advisory lock, so workers never even create duplicates; on another server, a claim is
confirmed after a short settling delay (``SETTLE_S``), after which every worker sees the same trials. A claim creates
its trial RUNNING with the point as its parameter in one insert, never through Optuna's queue of WAITING trials:
with several workers, one ``ask`` could pop another's enqueued trial and leave its own queued (Optuna's trial cache
can miss a trial whose insert commits late).

Liveness: a running trial records its worker (host, pid, process start time) and refreshes a ``heartbeat``
user attr every ``HEARTBEAT_S`` (more often for a short ``stale_after``: :func:`heartbeat_interval`). A RUNNING
trial is stale when its worker process is gone (same host) or its heartbeat is older than ``stale_after`` seconds
(any host; so machines need distinct host names and synchronised clocks); stale trials are marked ``FAIL`` and
their point is run again, resuming the run folder they left. A trial that failed by itself carries the user attr ``error`` and
is retried only on request (``retry_failed``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from hnanas.errors import HnanasError

log = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")  # validation IoU, latency
SIGNATURE_ATTR = "hnanas_sweep"  # study user attr: what the sweep is (param, configs); reruns must match
HEARTBEAT_S = 30.0
SETTLE_S = 2.0
PARAM_LOW, PARAM_HIGH = 0.0, 1e9  # one distribution for every point, so trials stay compatible
# the pip package of each database driver SQLAlchemy may import; a plain postgresql:// URL means psycopg (3) with
# SQLAlchemy >= 2.1, psycopg2 before
DRIVERS = {"psycopg": "pip install 'hnanas[postgres]' (psycopg 3)",
           "psycopg2": "pip install psycopg2-binary, or use a postgresql+psycopg:// URL with pip install "
                       "'hnanas[postgres]'",
           "pymysql": "pip install pymysql", "MySQLdb": "pip install mysqlclient"}


@dataclass(frozen=True)
class SweepPoint:
    """One value of the swept parameter (``latency_weight`` or ``target_latency_ms``)."""

    param: str
    value: float

    @property
    def key(self) -> str:
        return f"{'l' if self.param == 'latency_weight' else 't'}{self.value:g}"

    @property
    def label(self) -> str:
        return f"λ={self.value:g}" if self.param == "latency_weight" else f"target {self.value:g} ms"

    def matches(self, trial) -> bool:
        value = trial.params.get(self.param)
        return value is not None and math.isclose(float(value), self.value, rel_tol=1e-9, abs_tol=1e-12)


def sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


PG_LOCK_KEY = 0x686E616E6173  # "hnanas": the advisory lock of sweep claims on a PostgreSQL server


def serialised(url: str) -> bool:
    """Whether :func:`storage_lock` really excludes other workers for this storage (else claims settle)."""
    return sqlite_file(url) is not None or url.split(":", 1)[0].split("+")[0] == "postgresql"


@contextlib.contextmanager
def storage_lock(url: str) -> Iterator[None]:
    """Exclusive among the workers of a storage: a lock file beside a SQLite database (local processes), a
    session-level advisory lock on a PostgreSQL server (any machine; the server frees it if the worker dies); a
    no-op for other servers, whose claims settle instead (:data:`SETTLE_S`)."""
    path = sqlite_file(url)
    if path is not None:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    elif serialised(url):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        try:
            conn = sqlalchemy.create_engine(url, poolclass=NullPool).connect()
        except Exception as exc:  # noqa: BLE001 - a missing driver or an unreachable server
            raise _open_error(url, exc) from None
        with conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})
                conn.commit()
    else:
        yield


def _open_error(url: str, exc: Exception) -> HnanasError:
    """The one-line error for a storage that cannot be opened: its driver is missing, or the URL or server is bad."""
    if isinstance(exc, ImportError):
        cause, module = exc, None
        while cause is not None and module is None:  # Optuna re-raises the driver's ImportError as its own
            module = getattr(cause, "name", None)
            cause = cause.__cause__ or cause.__context__
        hint = DRIVERS.get((module or "").split(".")[0], "pip install 'hnanas[postgres]' for PostgreSQL, pymysql "
                                                         "for MySQL")
        return HnanasError(f"--storage {url}: its database driver{f' ({module})' if module else ''} is not "
                           f"installed; {hint}")
    return HnanasError(f"--storage {url}: cannot open it ({type(exc).__name__}: {str(exc).splitlines()[0]})")


def _storage(url: str):
    import optuna

    try:
        if sqlite_file(url) is not None:  # wait for the writer instead of failing with "database is locked"
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        return optuna.storages.get_storage(url)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/optuna raise many kinds for a bad URL or server
        raise _open_error(url, exc) from None


def open_study(url: str, name: str, signature: dict):
    """Create or load study ``name``; a study started by another kind of sweep is an error."""
    import optuna

    with storage_lock(url):
        storage = _storage(url)
        study = optuna.create_study(study_name=name, storage=storage, directions=list(DIRECTIONS),
                                    load_if_exists=True)
        if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
            raise HnanasError(f"study {name} in {url} has directions {study.directions}, not a hnanas sweep's "
                              f"(maximise validation IoU, minimise latency); choose another --study")
        existing = study.user_attrs.get(SIGNATURE_ATTR)
        if existing is None:
            study.set_user_attr(SIGNATURE_ATTR, signature)
        elif existing != signature:
            diff = _first_difference(existing, signature)
            raise HnanasError(f"study {name} in {url} was started with other settings ({diff}); rerun it with the "
                              f"same options, or choose another --study")
    return study


def _first_difference(old, new, where: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
    return f"{where or 'settings'} was {old!r}, now {new!r}"


# --------------------------------------------------------------------------------------------- liveness
def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def worker_attr() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _process_start(pid)}


def is_stale(trial, stale_after: float, now: float | None = None) -> bool:
    """Whether a RUNNING trial's worker is gone (same host: its process ended) or silent (no heartbeat for
    ``stale_after`` seconds)."""
    now = time.time() if now is None else now
    worker = trial.user_attrs.get("worker") or {}
    if worker.get("host") == socket.gethostname() and worker.get("pid"):
        started = _process_start(int(worker["pid"]))
        if started is None or (worker.get("started") and abs(started - float(worker["started"])) > 1.0):
            return True  # that process ended (or its pid now belongs to another one)
    beat = trial.user_attrs.get("heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    return beat is not None and now - float(beat) > stale_after


def heartbeat_interval(stale_after: float) -> float:
    """How often a running trial beats: every ``HEARTBEAT_S`` seconds, or often enough that a live worker beats
    at least four times within ``stale_after`` (a shorter ``stale_after`` than the beat would fail live trials)."""
    return min(HEARTBEAT_S, stale_after / 4)


@contextlib.contextmanager
def heartbeat(trial, interval: float = HEARTBEAT_S) -> Iterator[None]:
    """Refresh ``trial``'s heartbeat user attr every ``interval`` seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                trial.set_user_attr("heartbeat", time.time())
            except Exception as exc:  # noqa: BLE001 - a lost beat must not kill the trial
                log.debug("heartbeat of trial %d failed: %s", trial.number, exc)

    thread = threading.Thread(target=beat, name=f"hnanas-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale_trials(study, stale_after: float) -> list:
    """Mark RUNNING trials whose worker is gone as FAIL (without an ``error``: they were interrupted)."""
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_stale(trial, stale_after):
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except Exception:  # noqa: BLE001 - another worker was faster, or the trial just finished
                continue
            w = trial.user_attrs.get("worker") or {}
            params = ", ".join(f"{k}={v:g}" for k, v in trial.params.items())
            log.warning("trial %d (%s) was interrupted (its worker, pid %s on %s, stopped); its point will be run "
                        "again", trial.number, params, w.get("pid"), w.get("host"))
            failed.append(trial)
    return failed


# ------------------------------------------------------------------------------------------------ points
def point_state(trials: Sequence, point: SweepPoint, stale_after: float) -> tuple[str, object]:
    """(state, trial) of a point: ``done`` (a COMPLETE trial), ``running`` (a live RUNNING or WAITING trial),
    ``failed`` (its last attempt failed by itself), else ``pending`` (never run, or interrupted: the trial
    returned is the last interrupted attempt, whose run folder a retry resumes)."""
    from optuna.trial import TrialState

    mine = sorted((t for t in trials if point.matches(t)), key=lambda t: t.number)
    for t in mine:
        if t.state == TrialState.COMPLETE:
            return "done", t
    for t in mine:
        if t.state == TrialState.WAITING or (t.state == TrialState.RUNNING and not is_stale(t, stale_after)):
            return "running", t
    failures = [t for t in mine if t.state == TrialState.FAIL]
    if failures and failures[-1].user_attrs.get("error"):
        return "failed", failures[-1]
    return "pending", (failures[-1] if failures else None)


def running_elsewhere(trials: Sequence, points: Sequence[SweepPoint], stale_after: float) -> bool:
    """Whether any of ``points`` is being run by a live worker (a RUNNING trial that is not stale)."""
    from optuna.trial import TrialState

    for point in points:
        state, trial = point_state(trials, point, stale_after)
        if state == "running" and trial.state == TrialState.RUNNING:
            return True
    return False


def owner(trials: Sequence, point: SweepPoint, stale_after: float):
    """The trial that owns ``point``: a COMPLETE one, else the lowest-numbered live RUNNING one."""
    from optuna.trial import TrialState

    mine = [t for t in trials if point.matches(t)]
    done = [t for t in mine if t.state == TrialState.COMPLETE]
    if done:
        return min(done, key=lambda t: t.number)
    live = [t for t in mine if t.state == TrialState.RUNNING and not is_stale(t, stale_after)]
    return min(live, key=lambda t: t.number) if live else None


def create_trial(study, point: SweepPoint, user_attrs: dict | None = None):
    """A new RUNNING trial whose parameter is ``point``'s value (with ``user_attrs``), created by one insert."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    template = optuna.trial.create_trial(
        state=TrialState.RUNNING, params={point.param: point.value},
        distributions={point.param: FloatDistribution(PARAM_LOW, PARAM_HIGH)}, user_attrs=user_attrs or {})
    # Study.add_trial does the same insert but does not say which trial it made; Study.ask would take it from the
    # shared queue, where another worker's ask may take it first
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    return optuna.Trial(study, trial_id)
