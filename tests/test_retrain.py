"""retrain end to end on tiny data (in a subprocess, as users run it), exact resume after SIGKILL, and the
evaluate/export commands on its outputs."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import torch

from hnanas.cli import main
from hnanas.data.augment import pad_to_multiple
from hnanas.data.loading import decode_image
from hnanas.nas.models import Normalized
from hnanas.pipeline.sources import model_from_checkpoint
from hnanas.runs import load_checkpoint
from hnanas.runtime import run_onnx
from retrain_fixtures import EPOCHS, TRAIN_ARGS, hnanas_process, run_hnanas

def test_retrain_writes_every_output(retrained, workspace):
    names = {p.name for p in retrained.iterdir()}
    assert {"metrics.json", "latency.json", "model.onnx", "best.pt", "last.pt", "retrain_log.csv", "predictions.png",
            "config.yaml", "env.json", "run.log", "model.json"} <= names
    m = json.loads((retrained / "metrics.json").read_text())
    assert {"iou", "niou", "pd", "fa", "split", "dataset", "epochs", "n_images", "val_iou"} <= set(m)
    assert m["dataset"] == "tinydata" and m["split"] == "default" and m["epochs"] == EPOCHS and m["n_images"] == 5
    assert 0.0 <= m["iou"] <= 1.0 and m["training"]["steps"] == EPOCHS * 3
    assert m["best_epoch"] in (5, 6)  # quick validates every 5 epochs and after the last
    config = (retrained / "config.yaml").read_text()
    assert "val_fraction: 0.25" in config and "crop_size: 32" in config  # search data defaults, CLI crop
    log = (retrained / "retrain_log.csv").read_text().splitlines()
    assert len(log) == EPOCHS + 1 and log[0].startswith("epoch,step,loss,lr,seconds,val_loss,val_iou")
    latency = json.loads((retrained / "latency.json").read_text())
    assert latency["cpu"]["measured_ms"] > 0 and latency["cpu"]["threads"] == 1
    assert latency["cpu"]["providers"][0] == "CPUExecutionProvider" and latency["cpu"]["size"] == [32, 32]
    assert latency["cpu"]["predicted_ms"] is None and "no latency table" in latency["cpu"]["note"]
    assert (retrained / "predictions.png").read_bytes()[:4] == b"\x89PNG"


def test_exported_model_matches_the_checkpoint_on_a_real_image(retrained, workspace):
    state = load_checkpoint(retrained / "best.pt")
    assert state["model_spec"]["kind"] == "nested" and len(state["input_norm"]) == 2
    assert state["config"]["train"]["epochs"] == EPOCHS and "torch" in state["environment"]["packages"]
    net = Normalized(model_from_checkpoint(state), *state["input_norm"]).eval()
    image = pad_to_multiple(decode_image(workspace / "tinydata" / "images" / "synth_00003.png").astype(np.float32), 32,
                            state["input_norm"][0])[None, None]
    with torch.no_grad():
        expected = net(torch.from_numpy(image)).numpy()
    got = run_onnx(retrained / "model.onnx", image)
    assert np.abs(got - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())


def test_sigkill_and_resume_reproduces_the_uninterrupted_run(retrained, workspace, capsys):
    out = workspace / "runs" / "killed"
    proc = hnanas_process(["retrain", "--run", "runs/search", "--out", "runs/killed", *TRAIN_ARGS], workspace)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed_at = load_checkpoint(out / "last.pt")["epoch"]
    assert 1 <= killed_at < EPOCHS and not (out / "metrics.json").exists()

    assert main(["retrain", "--run", str(workspace / "runs/search"), "--out", str(out)]) == 2
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert main(["retrain", "--out", str(out), "--resume", "--epochs", "9"]) == 2
    assert "train.epochs is 6 in this run, not 9" in capsys.readouterr().err
    resumed = run_hnanas(["retrain", "--out", "runs/killed", "--resume"], workspace)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {killed_at} of {EPOCHS}" in (out / "run.log").read_text()

    for name in ("best.pt", "last.pt"):
        a, b = load_checkpoint(retrained / name), load_checkpoint(out / name)
        assert a["epoch"] == b["epoch"] and a["best"] == b["best"]
        assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (retrained, out))
    keys = ("iou", "niou", "pd", "fa", "val_iou", "best_epoch", "counts")
    assert {k: ma[k] for k in keys} == {k: mb[k] for k in keys}

    def rows(folder):
        lines = (folder / "retrain_log.csv").read_text().splitlines()
        return [",".join(c for i, c in enumerate(line.split(",")) if i != 4) for line in lines]  # drop seconds

    assert rows(retrained) == rows(out)


def test_resume_of_a_missing_run_and_missing_model_are_errors(workspace, capsys):
    assert main(["retrain", "--out", str(workspace / "runs" / "nothing"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["retrain", "--run", str(workspace / "runs" / "nothing")]) == 2
    assert "no genotype.json (not a finished search run)" in capsys.readouterr().err
    assert main(["retrain", "--genotype", "dense_res3", "--out", str(workspace / "runs" / "x")]) == 2
    assert "--genotype needs --space" in capsys.readouterr().err
    assert main(["retrain", "--model", "no_such_net", "--out", str(workspace / "runs" / "x")]) == 2
    assert "unknown model 'no_such_net'" in capsys.readouterr().err
