"""SIGKILL and resume (issue 17, part 2): a write killed half-way leaves the previous file whole and its temporary
file is removed later; a run killed before or between its first files can be started or resumed; a search killed
before its first checkpoint logs each epoch once. The end: ``bench/kill_resume.py`` on two commands, two kills."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import synthetic_table
from hnanas.data.synthetic import SynthParams, write_synthetic
from hnanas.errors import ConfigError
from hnanas.fileio import KILL_ENV, read_json, write_json
from hnanas.nas.space import load_space
from hnanas.runs import RunDir, read_csv_rows
from hnanas.search.config import resolve_config
from hnanas.search.run import run_search

REPO = Path(__file__).resolve().parents[1]
HOST = socket.gethostname().replace(".", "_")[:64]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_write_killed_half_way_keeps_the_old_file_and_its_temporary_goes_later(tmp_path):
    target = tmp_path / "table.json"
    code = "import sys; from hnanas.fileio import write_json; [write_json(sys.argv[1], {'v': i}) for i in (1, 2)]"
    done = subprocess.run([sys.executable, "-c", code, str(target)], env={**os.environ, KILL_ENV: "table.json:2",
                          "PYTHONPATH": str(REPO)}, capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL  # the hook fired at the second write, not the first
    temps = list(tmp_path.glob(".table.json.*.tmp"))
    assert read_json(target) == {"v": 1} and len(temps) == 1
    assert 0 < temps[0].stat().st_size < len(json.dumps({"v": 2}, indent=2))  # half a file
    write_json(target, {"v": 3})  # the next write of the file removes what the killed writer left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.json"] and read_json(target) == {"v": 3}


def test_opening_a_run_removes_only_temporaries_of_dead_writers(tmp_path):
    run = RunDir.create(tmp_path / "run")
    (run.path / "arch").mkdir()
    dead = run.path / "arch" / f".last.pt.{HOST}.{dead_pid()}.abc.tmp"
    live = run.path / f".best.pt.{HOST}.{os.getpid()}.abc.tmp"
    other_host = run.path / f".best.pt.elsewhere.{dead_pid()}.abc.tmp"
    unknown = run.path / ".notes.txt.abc123.tmp"
    for p in (dead, live, other_host, unknown):
        p.write_bytes(b"half")
    with run.exclusive():
        assert not dead.exists() and live.exists() and other_host.exists() and unknown.exists()


def test_a_run_killed_before_its_config_can_be_started_again(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in (".lock", "run.log", f".config.yaml.{HOST}.{dead_pid()}.abc.tmp"):
        (folder / name).write_text("process 1\n")
    with pytest.raises(ConfigError, match="killed before it started.*without --resume"):
        RunDir.create(folder, resume=True).read_config(dict)
    RunDir.create(folder)  # what that error says to do now works
    (folder / "config.yaml").write_text("a: 1\n")
    with pytest.raises(Exception, match="already exists; pass --resume"):
        RunDir.create(folder)


def test_a_retrain_killed_between_its_config_and_model_json_resumes(tmp_path, monkeypatch):
    from hnanas.pipeline.presets import build_config
    import hnanas.pipeline.retrain as retrain
    from hnanas.pipeline.sources import resolve_spec

    cfg = build_config("quick", {"genotype": "chain_res3", "space": "tiny"})
    out = tmp_path / "r"
    RunDir.create(out).write_config(cfg)  # killed here, before model.json
    seen = {}
    monkeypatch.setattr(retrain, "_run", lambda run, cfg, spec: seen.setdefault("spec", spec))
    retrain.resume_retrain(out)
    assert seen["spec"] == read_json(out / "model.json") == resolve_spec("chain_res3", "tiny", None)


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it, nothing after it runs."""


@pytest.fixture(scope="module")
def search_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    write_synthetic(root / "syn", SynthParams(n=16, size=64, seed=0))
    table = synthetic_table(load_space("tiny")).save(root / "tiny_cpu_t1.csv")
    return resolve_config("quick", {"data.dataset": str(root / "syn"), "data.crop_size": 32, "space": "tiny",
                                    "table": str(table), "batch_size": 8, "stage1.epochs": 1,
                                    "stage1.warmup_epochs": 0, "stage2.epochs": 1, "stage2.warmup_epochs": 0,
                                    "precision": "fp32"})


def test_a_search_killed_before_its_env_json_writes_it_on_resume(search_cfg, tmp_path, monkeypatch):
    def killed(self, extra=None):
        raise Killed
    monkeypatch.setattr(RunDir, "write_env", killed)
    with pytest.raises(Killed):
        run_search(search_cfg, tmp_path / "s")
    monkeypatch.undo()
    run_search(search_cfg, tmp_path / "s", resume=True)
    assert read_json(tmp_path / "s" / "env.json")["torch_device"] == "cpu"  # it was missing for good


def test_a_search_killed_before_its_first_checkpoint_logs_each_epoch_once(search_cfg, tmp_path, monkeypatch):
    cfg = search_cfg

    def killed(self, state, name="last.pt"):
        raise Killed  # the first epoch is logged, its checkpoint never written
    monkeypatch.setattr(RunDir, "save_checkpoint", killed)
    with pytest.raises(Killed):
        run_search(cfg, tmp_path / "s")
    assert len(read_csv_rows(tmp_path / "s" / "search_log.csv")) == 1
    monkeypatch.undo()
    run_search(cfg, tmp_path / "s", resume=True)
    steps = [r["step"] for r in read_csv_rows(tmp_path / "s" / "search_log.csv")]
    assert steps == ["100000", "200000"]  # stage 1 epoch 1 once (it was logged twice), stage 2 epoch 1


@pytest.mark.slow
def test_bench_kill_resume_retrain_two_kills_and_a_kill_inside_a_checkpoint_write(tmp_path):
    """``retrain`` killed at two random times, and inside its second ``last.pt`` write, resumed each time: the
    same weights, metrics and log as an uninterrupted run, nothing truncated (all four commands with ten kills:
    ``python bench/kill_resume.py``)."""
    out = tmp_path / "kill.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "kill_resume.py"), "--only", "retrain", "--kills", "2",
                           "--seed", "2", "--json", str(out)], capture_output=True, text=True, timeout=400,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.is_file(), done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    # seed 2 puts both kills early in the work (25 % and 41 % of it, then of what is left): a warm rerun runs
    # faster than the cold uninterrupted reference, and seed 0's first kill (85 %) came after it had finished
    assert [r["fault"] for r in rows] == ["SIGKILL at 2 random times (seed 2)", "SIGKILL inside the write of last.pt "
                                          "(write 2)"]
    assert all(r["ok"] for r in rows) and done.returncode == 0, ([r["why"] for r in rows], done.stderr[-2000:])
    assert sum(a["rc"] in (None, -9) for a in rows[0]["attempts"]) >= 1  # a kill landed before the run finished
    assert "the previous last.pt (epoch 1) read back whole" in rows[1]["error"]
    assert "bit-identical" in rows[0]["error"] and "| SIGKILL at 2 random times" in done.stdout
