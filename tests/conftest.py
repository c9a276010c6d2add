"""Shared test fixtures: seeding, the real NUAA-SIRST location, and a temporary data root."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HNANAS_SHARED", REPO.parent / "shared"))
NUAA = SHARED / "datasets" / "NUAA-SIRST"
NUDT = SHARED / "datasets" / "NUDT-SIRST"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tests use tiny tensors, for which intra-op threads only add synchronisation; with two threads on a loaded
    2-core machine a step ran ~20x slower. One thread keeps the suite fast and its timings stable."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """An empty hnanas cache for the suite (and the commands it starts): tables a user priced this machine with
    (`hnanas profile quick`, ~/.cache/hnanas) must not change what the tests' searches and reports predict."""
    before = os.environ.get("HNANAS_CACHE_DIR")
    os.environ["HNANAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("hnanas-cache"))
    yield
    if before is None:
        os.environ.pop("HNANAS_CACHE_DIR", None)
    else:
        os.environ["HNANAS_CACHE_DIR"] = before


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover
        pass
    yield


@pytest.fixture
def nuaa_root() -> Path:
    """The real NUAA-SIRST benchmark from ../shared (read-only); skipped when it is not beside the repo."""
    if not (NUAA / "images").is_dir():
        pytest.skip(f"real NUAA-SIRST not found at {NUAA}")
    return NUAA


@pytest.fixture
def nudt_root() -> Path:
    """The real NUDT-SIRST (DNANet layout, 50_50) from ../shared (read-only); skipped when it is absent."""
    if not (NUDT / "images").is_dir():
        pytest.skip(f"real NUDT-SIRST not found at {NUDT}")
    return NUDT


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    """An empty data root; HNANAS_DATA and the cache folder point into the test's tmp dir."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("HNANAS_DATA", str(root))
    monkeypatch.setenv("HNANAS_CACHE", str(tmp_path / "cache"))
    return root


# The tiny retrained run shared by test_retrain.py and test_evaluate_export.py (defined once, so it runs once).
from retrain_fixtures import retrained, workspace  # noqa: E402,F401
