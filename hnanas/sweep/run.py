"""``hnanas sweep``: search + retrain for each value of λ (or of the target latency), recorded in an Optuna
multi-objective study (maximise the retrain's validation IoU of its chosen checkpoint, minimise the latency
measured on the search device), then a report over the study's runs and Optuna's own Pareto-front plot.

Each point runs in ``<runs_dir>/<study>/trial_<k>_<l|t><value>/`` (the search run) with ``retrain/`` inside; the
objective values, test metrics and folders are the trial's user attrs. A failing trial is recorded as FAIL with
its error and the sweep goes on; an interrupted one (killed worker) is run again by the next invocation or by
another worker, resuming its folder. See :mod:`hnanas.sweep.study` for claims, liveness and storages.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hnanas.config import override, to_dict
from hnanas.errors import HnanasError
from hnanas.fileio import read_json, write_text
from hnanas.pipeline.deploy import local_devices
from hnanas.pipeline.presets import build_config
from hnanas.pipeline.retrain import resume_retrain, start_retrain
from hnanas.pipeline.sources import search_run_source
from hnanas.report.build import write_report
from hnanas.report.figures import draw_optuna_pareto
from hnanas.report.runs import is_run
from hnanas.runs import RunDir
from hnanas.search.config import SearchConfig
from hnanas.search.run import run_search
from hnanas.sweep import study as st

log = logging.getLogger(__name__)
MACHINE_KEYS = ("train.threads",)  # retrain settings a worker may set for its own machine (not in the signature)


@dataclass
class SweepConfig:
    """One sweep: which parameter takes which values, and the search/retrain settings shared by all points."""

    study: str  # Optuna study name (also the run folder under runs_dir)
    param: Literal["latency_weight", "target_latency_ms"]  # the swept search option
    values: list[float]  # its values, run in this order
    search: SearchConfig  # the search config of every point (the swept option is set per point)
    retrain_preset: str = "quick"  # retrain preset (hnanas.pipeline.presets)
    retrain_changes: dict = field(default_factory=dict)  # dotted retrain config keys (e.g. "train.epochs")
    retrain_config: str | None = None  # a retrain YAML config file, as retrain --config
    storage: str | None = None  # Optuna storage URL; None: sqlite:///<runs_dir>/<study>.db
    runs_dir: Path = Path("runs")  # run folders go to <runs_dir>/<study>/
    objective_latency: Literal["measured", "predicted"] = "measured"  # the latency objective
    retry_failed: bool = False  # run points whose last trial failed (not interrupted) again
    stale_after: float = 600.0  # a RUNNING trial without a heartbeat for this long is taken as interrupted
    wait: bool = False  # with nothing left to claim, wait for other workers' running points (take over the dead)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.study):
            raise HnanasError(f"sweep: study name {self.study!r} must be letters, digits, '_', '.', '-' (it names "
                              f"a folder)")
        if not self.values:
            raise HnanasError("sweep: give at least one value (--latency-weights or --targets)")
        if len({round(v, 12) for v in self.values}) != len(self.values):
            raise HnanasError(f"sweep: repeated values in {self.values}")
        low = 0.0 if self.param == "latency_weight" else 1e-12
        if any(not math.isfinite(v) or v < low or v > st.PARAM_HIGH for v in self.values):
            raise HnanasError(f"sweep: {self.param} values must be {'>= 0' if low == 0 else '> 0'}, got {self.values}")
        if not self.stale_after > 0:
            raise HnanasError(f"sweep: --stale-after must be > 0 seconds, got {self.stale_after}")

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.runs_dir / (self.study + '.db')}"

    @property
    def study_dir(self) -> Path:
        return self.runs_dir / self.study

    @property
    def points(self) -> list[st.SweepPoint]:
        return [st.SweepPoint(self.param, float(v)) for v in self.values]

    def signature(self) -> dict:
        """What makes trials of one study comparable (stored in the study; a rerun must match)."""
        search = to_dict(self.search)
        search.pop(self.param, None)
        changes = {k: v for k, v in sorted(self.retrain_changes.items()) if k not in MACHINE_KEYS}
        return {"param": self.param, "search": search, "objective_latency": self.objective_latency,
                "retrain": {"preset": self.retrain_preset, "changes": changes, "config": self.retrain_config}}


@dataclass
class TrialOutcome:
    """What one trial of this invocation did."""

    number: int
    point: str
    state: str  # complete | failed | duplicate | unrecorded
    run_dir: str = ""
    values: list[float] | None = None
    error: str = ""

    def line(self) -> str:
        if self.state == "complete" and self.values:
            return (f"trial {self.number} {self.point}: val IoU {100 * self.values[0]:.2f} %, latency "
                    f"{self.values[1]:.3g} ms -> {self.run_dir}")
        return f"trial {self.number} {self.point}: {self.state}" + (f" ({self.error})" if self.error else "")


@dataclass
class SweepResult:
    study: str
    storage: str
    outcomes: list[TrialOutcome]
    states: dict[str, str]  # point label -> done | running | failed | pending
    report: Path | None = None
    pareto_png: Path | None = None

    def summary(self) -> str:
        lines = [o.line() for o in self.outcomes] or ["no trial run by this worker (nothing left to claim)"]
        counts = {s: sum(v == s for v in self.states.values()) for s in ("done", "running", "failed", "pending")}
        lines.append(f"study {self.study} ({self.storage}): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        failed = [p for p, s in self.states.items() if s == "failed"]
        if failed:
            lines.append(f"failed points ({', '.join(failed)}): see their trials' 'error' attr and sweep_error.txt; "
                         f"rerun with --retry-failed to try them again")
        if self.report:
            lines.append(f"report: {self.report}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- one point
def _search(cfg: SweepConfig, point: st.SweepPoint, run_dir: Path) -> None:
    if (run_dir / "genotype.json").is_file():
        return  # finished before the interruption
    if (run_dir / "config.yaml").is_file():  # an interrupted search: continue it with its own config
        run_search(RunDir(run_dir).read_config(SearchConfig), run_dir, resume=True)
        return
    run_search(override(cfg.search, {point.param: point.value}, source=f"sweep point {point.label}"), run_dir)


def _retrain(cfg: SweepConfig, run_dir: Path) -> Path:
    out = run_dir / "retrain"
    if (out / "metrics.json").is_file():
        return out
    if (out / "model.json").is_file():
        resume_retrain(out)
        return out
    if out.is_dir():  # killed before its first epoch began: holds no weights
        log.info("%s: discarding a retrain that had not started", out)
        shutil.rmtree(out)
    model, base = search_run_source(run_dir)
    rcfg = build_config(cfg.retrain_preset, model, base=base, file=cfg.retrain_config, changes=cfg.retrain_changes)
    start_retrain(rcfg, out)
    return out


def run_point(cfg: SweepConfig, point: st.SweepPoint, run_dir: Path) -> tuple[list[float], dict]:
    """Search and retrain one point into ``run_dir`` (resuming what is there); returns the objective values
    [validation IoU, latency ms] and the user attrs to record."""
    _search(cfg, point, run_dir)
    retrain = _retrain(cfg, run_dir)
    metrics, latency = read_json(retrain / "metrics.json"), read_json(retrain / "latency.json")
    info = read_json(run_dir / "genotype.json").get("info") or {}
    device = cfg.search.device
    if metrics.get("val_iou") is None:
        raise HnanasError(f"{retrain / 'metrics.json'}: no validation IoU (empty validation subset); the sweep's "
                          f"accuracy objective needs one (raise the data's val_fraction)")
    measured = (latency.get(device) or {}).get("measured_ms")
    if cfg.objective_latency == "measured" and measured is None:
        raise HnanasError(f"{retrain / 'latency.json'}: no latency measured on {device}")
    latency_ms = measured if cfg.objective_latency == "measured" else info.get("predicted_latency_ms")
    attrs = {"val_iou": metrics["val_iou"], "latency_ms": latency_ms, "measured_ms": measured,
             "predicted_ms": info.get("predicted_latency_ms"), "test_iou": metrics.get("iou"),
             "test_niou": metrics.get("niou"), "test_pd": metrics.get("pd"), "test_fa": metrics.get("fa"),
             "params": metrics.get("params"), "macs": metrics.get("macs"), "retrain_dir": str(retrain)}
    return [float(metrics["val_iou"]), float(latency_ms)], attrs


# ---------------------------------------------------------------------------------------------- the loop
def _claim(study, cfg: SweepConfig, attempted: set[str]):
    """Under the storage lock: fail stale trials, pick the first point to run, create its trial. Returns (trial,
    point, run folder), or None when no point is left to claim."""
    with st.storage_lock(cfg.storage_url):
        st.fail_stale_trials(study, cfg.stale_after)
        trials = study.get_trials(deepcopy=False)
        for point in cfg.points:
            state, last = st.point_state(trials, point, cfg.stale_after)
            if point.key not in attempted and (state == "pending" or (state == "failed" and cfg.retry_failed)):
                break
        else:
            return None
        previous = Path(last.user_attrs["run_dir"]) if last is not None and state == "pending" and \
            last.user_attrs.get("run_dir") else None
        if previous is not None and not previous.is_dir():
            previous = None
        trial = st.create_trial(study, point, {"worker": st.worker_attr(), "heartbeat": time.time(),
                                               "point": point.key})
        run_dir = previous or cfg.study_dir / f"trial_{trial.number}_{point.key}"
        trial.set_user_attr("run_dir", str(run_dir))
        if previous is not None:
            trial.set_user_attr("retry_of", last.number)
        return trial, point, run_dir


def _run_trial(study, cfg: SweepConfig, trial, point: st.SweepPoint, run_dir: Path) -> TrialOutcome:
    from optuna.trial import TrialState

    log.info("sweep %s: trial %d, %s -> %s", cfg.study, trial.number, point.label, run_dir)
    try:
        with st.heartbeat(trial, st.heartbeat_interval(cfg.stale_after)):
            values, attrs = run_point(cfg, point, run_dir)
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", "stopped by the user")
        study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as exc:  # noqa: BLE001 - one failing point must not end the study
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        if run_dir.is_dir():
            write_text(run_dir / "sweep_error.txt", traceback.format_exc())
        log.error("sweep %s: trial %d (%s) failed: %s", cfg.study, trial.number, point.label, message)
        trial.set_user_attr("error", message)
        study.tell(trial, state=TrialState.FAIL)
        return TrialOutcome(trial.number, point.label, "failed", str(run_dir), error=message)
    try:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, values)
    except Exception as exc:  # noqa: BLE001 - e.g. another worker took this (suspended) worker's trial as stale
        log.warning("sweep %s: trial %d finished but could not be recorded (%s); its results are in %s; rerun the "
                    "sweep to record them", cfg.study, trial.number, exc, run_dir)
        return TrialOutcome(trial.number, point.label, "unrecorded", str(run_dir), values, str(exc))
    return TrialOutcome(trial.number, point.label, "complete", str(run_dir), values)


def _check_objective_device(cfg: SweepConfig) -> None:
    if cfg.objective_latency != "measured":
        return
    here = local_devices()
    if cfg.search.device not in here:
        raise HnanasError(f"sweep: the latency objective is measured on {cfg.search.device}, which does not run "
                          f"here (devices here: {', '.join(here) or 'none'}); run the sweep on that device, or "
                          f"rank by the table's prediction with --objective-latency predicted")


def run_sweep(cfg: SweepConfig, max_trials: int | None = None, *, report: bool = True) -> SweepResult:
    """Run up to ``max_trials`` points of the sweep not done yet (all of them by default), then the report. With
    ``cfg.wait``, a worker with nothing left to claim waits while other workers' points run, and takes over any
    whose worker stops (its trial goes stale), instead of returning."""
    from optuna.trial import TrialState

    _check_objective_device(cfg)
    study = st.open_study(cfg.storage_url, cfg.study, cfg.signature())
    outcomes: list[TrialOutcome] = []
    attempted: set[str] = set()
    while max_trials is None or sum(o.state != "duplicate" for o in outcomes) < max_trials:
        claim = _claim(study, cfg, attempted)
        if claim is None:
            points = [p for p in cfg.points if p.key not in attempted]
            if cfg.wait and st.running_elsewhere(study.get_trials(deepcopy=False), points, cfg.stale_after):
                time.sleep(min(st.HEARTBEAT_S, max(1.0, cfg.stale_after / 4)))
                continue
            break
        trial, point, run_dir = claim
        if not st.serialised(cfg.storage_url):
            time.sleep(st.SETTLE_S)  # let concurrent claims on a server land before checking who owns the point
        won = st.owner(study.get_trials(deepcopy=False), point, cfg.stale_after)
        if won is not None and won.number != trial.number:
            trial.set_user_attr("duplicate_of", won.number)
            study.tell(trial, state=TrialState.PRUNED)
            outcomes.append(TrialOutcome(trial.number, point.label, "duplicate", error=f"trial {won.number} has it"))
            continue  # not attempted: should the owner's worker die, this worker may take the point over
        attempted.add(point.key)
        outcomes.append(_run_trial(study, cfg, trial, point, run_dir))
    trials = study.get_trials(deepcopy=False)
    states = {p.label: st.point_state(trials, p, cfg.stale_after)[0] for p in cfg.points}
    result = SweepResult(cfg.study, cfg.storage_url, outcomes, states)
    if report:
        result.report, result.pareto_png = sweep_report(cfg, study)
    return result


def sweep_report(cfg: SweepConfig, study) -> tuple[Path | None, Path | None]:
    """``hnanas report`` over the study's run folders found here, with Optuna's Pareto-front plot."""
    folders: list[str] = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        folder = trial.user_attrs.get("run_dir")
        if folder and folder not in folders and is_run(Path(folder)):
            folders.append(folder)
    if not folders:
        return None, None
    out = cfg.study_dir / "report"
    latency = f"{cfg.objective_latency} latency on {cfg.search.device} (ms)"
    png = draw_optuna_pareto(study, out / "figures" / "optuna_pareto_front.png", ["validation IoU", latency])
    extra = [(f"Optuna's Pareto front: validation IoU vs {cfg.objective_latency} latency on {cfg.search.device}",
              png)] if png else []
    return write_report(folders, out=out, devices=None, extra_figures=extra).index, png
