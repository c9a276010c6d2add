"""A tiny retrained run shared by the retrain, evaluate and export tests (one subprocess run per session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hnanas.data import SynthParams, write_synthetic
from hnanas.fileio import write_yaml
from hnanas.nas.genotype import named_genotypes
from hnanas.nas.space import load_space

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 6
# fp32: the resume test compares two runs bit for bit, so neither may choose its train path by timing
TRAIN_ARGS = ["--epochs", str(EPOCHS), "--crop-size", "32", "--batch-size", "4", "--threads", "1",
              "--precision", "fp32"]


def hnanas_process(args: list[str], env_root: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HNANAS_DATA": str(env_root / "data"),
           "HNANAS_CACHE": str(env_root / "cache"), "HNANAS_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "hnanas", *args], env=env, cwd=env_root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_hnanas(args: list[str], env_root: Path) -> subprocess.CompletedProcess:
    proc = hnanas_process(args, env_root)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    """A tiny synthetic dataset and a search run folder (genotype.json + config.yaml) pointing at it."""
    root = tmp_path_factory.mktemp("retrain")
    write_synthetic(root / "tinydata", SynthParams(n=24, size=64, seed=0))
    space = load_space("tiny")
    search = root / "runs" / "search"
    named_genotypes(space)["dense_res3"].save(search / "genotype.json")
    write_yaml(search / "config.yaml", {"space": "tiny", "data": {"dataset": str(root / "tinydata"), "crop_size": 48,
                                                                  "val_fraction": 0.25}})
    return root


@pytest.fixture(scope="session")
def retrained(workspace) -> Path:
    """An uninterrupted retrain of the search run (the reference for the resume test)."""
    result = run_hnanas(["retrain", "--run", "runs/search", *TRAIN_ARGS], workspace)
    assert result.returncode == 0, result.stderr
    assert "retrain dense_res3 (tiny): test IoU" in result.stdout
    return workspace / "runs" / "search" / "retrain"
