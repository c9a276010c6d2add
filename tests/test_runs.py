"""Run folders: no silent overwrite, strict resume, atomic weights-only checkpoints, RNG capture, CSV logs."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from hnanas.errors import ConfigError, HnanasError
from hnanas.runs import RunDir, load_checkpoint, plain, restore_rng_state, rng_state, save_checkpoint


@dataclass
class Inner:
    lr: float = 0.1  # a learning rate


@dataclass
class Cfg:
    name: str = "x"  # a name
    inner: Inner = field(default_factory=Inner)  # nested section


def test_create_refuses_an_existing_run_and_resume_needs_one(tmp_path):
    run = RunDir.create(tmp_path / "runs" / "a")
    assert run.path.is_dir() and not run.resumed
    RunDir.create(tmp_path / "runs" / "a")  # still empty: nothing to lose
    run.write_config(Cfg())
    with pytest.raises(HnanasError, match=r"runs/a: the run folder already exists; pass --resume"):
        RunDir.create(tmp_path / "runs" / "a")
    assert RunDir.create(tmp_path / "runs" / "a", resume=True).resumed
    with pytest.raises(HnanasError, match=r"runs/b: nothing to resume"):
        RunDir.create(tmp_path / "runs" / "b", resume=True)
    (tmp_path / "runs" / "c").mkdir()
    with pytest.raises(HnanasError, match="nothing to resume"):
        RunDir.create(tmp_path / "runs" / "c", resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(HnanasError, match="not a folder"):
        RunDir.create(tmp_path / "file")


def test_config_env_and_log_files(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_config(Cfg(name="y", inner=Inner(lr=0.5)))
    assert run.read_config(Cfg) == Cfg(name="y", inner=Inner(lr=0.5))
    run.config_path.write_text("name: y\ninner: {lr: 0.5, momentum: 0.9}\n")
    with pytest.raises(ConfigError, match=r"config.yaml.inner: unknown key 'momentum'"):
        run.read_config(Cfg)
    env = run.write_env({"torch_device": "cpu"})
    assert '"torch_device": "cpu"' in env.read_text() and '"torch"' in env.read_text()
    with run.logging_to_file():
        logging.getLogger("hnanas.test").info("inside the run")
    logging.getLogger("hnanas.test").info("after the run")
    run.note("summary line")
    text = run.file("run.log").read_text()
    assert "INFO hnanas.test: inside the run" in text and "after the run" not in text
    assert text.endswith("summary line\n")


def test_checkpoint_round_trip_is_weights_only_and_atomic(tmp_path):
    model = torch.nn.Conv2d(1, 2, 3)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.1)
    model(torch.randn(1, 1, 5, 5)).sum().backward()
    optimizer.step()
    state = {"model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(), "epoch": 3,
             "environment": {"torch": torch.__version__, "n": np.int64(4), "x": np.float32(0.5)},
             "best": {"val_iou": float("nan")}}
    path = save_checkpoint(tmp_path / "last.pt", state)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    loaded = load_checkpoint(path)
    assert loaded["format"] == "hnanas-checkpoint/1" and loaded["epoch"] == 3
    assert type(loaded["environment"]["torch"]) is str and loaded["environment"]["n"] == 4
    assert all(torch.equal(loaded["model_state"][k], v) for k, v in model.state_dict().items())
    fresh = torch.optim.Adagrad(model.parameters(), lr=0.1)
    fresh.load_state_dict(loaded["optimizer_state"])
    assert torch.equal(fresh.state_dict()["state"][0]["sum"], optimizer.state_dict()["state"][0]["sum"])


def test_unreadable_or_foreign_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(HnanasError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(HnanasError, match="junk.pt: not an hnanas checkpoint, or a damaged one"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(HnanasError, match="foreign.pt: not an hnanas checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    good = save_checkpoint(tmp_path / "good.pt", {"epoch": 1})
    good.write_bytes(good.read_bytes()[:40])  # truncated
    with pytest.raises(HnanasError, match="good.pt: not an hnanas checkpoint, or a damaged one"):
        load_checkpoint(good)
    with pytest.raises(TypeError, match="cannot store object"):
        plain({"x": object()})


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(), [random.random() for _ in range(3)]


def test_rng_state_survives_a_checkpoint(tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    draws()
    np.random.randn()  # leaves a cached gaussian in numpy's state
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = draws()
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert draws() == expected


def test_csv_log_appends_and_truncates_to_a_checkpoint(tmp_path):
    run = RunDir.create(tmp_path / "r")
    log = run.csv_log("log.csv", ["epoch", "loss", "note"])
    for epoch in range(1, 6):
        log.append({"epoch": epoch, "loss": 1.0 / epoch, "note": "a,b" if epoch == 2 else None})
    with open(log.path, "a") as f:
        f.write("6,0.1")  # a torn last line from a kill
    assert log.truncate_after(3) == 3
    rows = log.rows()
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and rows[1]["note"] == "a,b" and rows[0]["note"] == ""
    assert rows[2]["loss"] == "0.333333"
    log.append({"epoch": 4, "loss": 0.25})
    assert [r["epoch"] for r in log.rows()] == ["1", "2", "3", "4"]
    with pytest.raises(HnanasError, match="columns .* are not this run's"):
        run.csv_log("log.csv", ["epoch", "loss"])
    with pytest.raises(ValueError, match="unknown columns"):
        log.append({"epoch": 5, "acc": 1})


def test_a_run_folder_has_one_writer_at_a_time(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.exclusive():
        with pytest.raises(HnanasError, match=rf"run: process {os.getpid()} is writing this run"):
            with RunDir(tmp_path / "run").exclusive():
                pass
    with RunDir(tmp_path / "run").exclusive():  # released when the writer ends
        pass
