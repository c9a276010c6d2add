"""Faults and bad input (issue 17, part 2): each is a one-line error naming the file and the fix, exit status 2,
and nothing is left half-written. The cheap rows of ``bench/faults.py`` run as real commands at the end."""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _helpers import synthetic_table
from hnanas.cli import main
from hnanas.data import SynthParams, build_data, write_synthetic
from hnanas.data.bundle import DataConfig
from hnanas.data.check import check_dataset
from hnanas.data.layouts import open_dataset
from hnanas.data.loading import load_mask
from hnanas.errors import ConfigError, DataError, HnanasError, environment_error
from hnanas.fileio import atomic_path, write_json
from hnanas.latency.bundle import import_results
from hnanas.latency.table import LatencyTable
from hnanas.nas.genotype import load_genotype, named_genotypes
from hnanas.nas.space import load_space
from hnanas.runs import RunDir, load_checkpoint, save_checkpoint


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


def test_full_disk_and_read_only_folder_are_one_line_errors_with_the_fix():
    full = environment_error(OSError(errno.ENOSPC, "No space left on device", "/runs/x/last.pt"))
    assert str(full).startswith("/runs/x/last.pt: No space left on device; free space") and "--resume" in str(full)
    assert "read-only" in str(environment_error(OSError(errno.EROFS, "Read-only file system", "/ro/run")))
    assert environment_error(FileNotFoundError(errno.ENOENT, "No such file", "x")) is None  # a bug keeps its traceback


def test_cli_reports_an_os_error_of_the_machine_with_exit_2(monkeypatch, capsys):
    import hnanas.cli.data as data_cli

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", "/ro/data")
    monkeypatch.setattr(data_cli, "write_synthetic", read_only)
    assert main(["data", "synth", "--out", "/ro/data"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hnanas: error: /ro/data: Read-only file system; the file system is read-only")
    assert not any("Traceback" in line for line in err)


def test_checkpoint_on_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    before = path.read_bytes()

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as info:
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_atomic_write_names_the_target_not_its_temporary(tmp_path):
    with pytest.raises(OSError) as info:
        with atomic_path(tmp_path / "table.csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(tmp_path / "table.csv") and not list(tmp_path.iterdir())


def test_a_foreign_pickle_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "MARKER"

    class Marker:
        def __reduce__(self):
            return open, (str(marker), "w")
    for i, write in enumerate((lambda p, o: p.write_bytes(pickle.dumps(o)), lambda p, o: torch.save(o, p))):
        path = tmp_path / f"evil{i}.pt"
        write(path, {"model": Marker()})
        with pytest.raises(HnanasError, match=r"evil\d.pt: not an hnanas checkpoint.*it was not unpickled"):
            load_checkpoint(path)
        assert not marker.exists()
    pickle.loads(pickle.dumps(Marker())).close()  # the payload is live: a plain unpickler creates the file
    assert marker.exists()


def test_a_checkpoint_of_another_version_says_so(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"format": "hnanas-checkpoint/0", "epoch": 1}, path)
    with pytest.raises(HnanasError, match="format 'hnanas-checkpoint/0'.*another hnanas version"):
        load_checkpoint(path)


@pytest.mark.parametrize("values, ok", [({0, 255}, True), ({0, 1}, True), ({0}, True), ({0, 100, 200}, False),
                                        ({0, 128}, False), ({0, 1, 255}, False)])
def test_masks_must_be_binary(tmp_path, values, ok):
    arr = np.array(sorted(values) * 4, np.uint8)[:4].reshape(2, 2)
    path = tmp_path / "m.png"
    Image.fromarray(arr).save(path)
    if ok:
        assert load_mask(path, (2, 2)).shape == (2, 2)
    else:
        with pytest.raises(DataError, match=r"m.png: mask values \{.*\} are not a binary mask"):
            load_mask(path, (2, 2))


@pytest.fixture
def small_data(tmp_path) -> Path:
    root = tmp_path / "ds"
    write_synthetic(root, SynthParams(n=6, size=40, seed=0))
    return root


def test_data_check_counts_a_non_binary_mask_as_an_error(small_data):
    mask = sorted((small_data / "masks").glob("*.png"))[0]
    Image.fromarray(np.full((40, 40), 100, np.uint8)).save(mask)
    report = check_dataset(open_dataset(small_data))
    assert any(mask.name in p.message and "not a binary mask" in p.message for p in report.errors)


def test_an_empty_train_list_names_the_file(small_data):
    (small_data / "train.txt").write_text("")
    with pytest.raises(DataError, match=r"train.txt: the train list of split default is empty"):
        build_data(DataConfig(dataset=str(small_data), crop_size=16))


@pytest.mark.parametrize("value", ["nan", "-0.5", "inf", "fast"])
def test_a_table_with_a_bad_entry_is_refused_naming_the_line(tiny, tmp_path, value):
    path = synthetic_table(tiny).save(tmp_path / "t.csv")
    lines = path.read_text().splitlines()
    col = lines[0].split(",").index("median_ms")
    cells = lines[3].split(",")
    cells[col] = value
    path.write_text("\n".join([*lines[:3], ",".join(cells), *lines[4:]]) + "\n")
    with pytest.raises(ConfigError, match=r"t.csv: line 4: median_ms .* is not a time in ms"):
        LatencyTable.load(path, space=tiny)


@pytest.mark.parametrize("edit, message", [(lambda n: n["1_0"].update(op="conv99"), "unknown op 'conv99'; known ops"),
                                           (lambda n: n["1_0"].update(inputs=["1_1"]), "candidates are")])
def test_a_bad_genotype_file_is_named(tiny, tmp_path, edit, message):
    g = named_genotypes(tiny)["chain_res3"].to_dict()
    edit(g["nodes"])
    write_json(tmp_path / "g.json", g)
    with pytest.raises(ConfigError, match=rf"g.json \(genotype chain_res3\): node 1_0.*{message}"):
        load_genotype(tmp_path / "g.json", tiny)


def test_a_refused_new_run_leaves_no_folder_but_a_started_or_resumed_one_stays(tmp_path):
    run = RunDir.create(tmp_path / "new")
    with pytest.raises(HnanasError), run.exclusive(), run.discard_if_refused():
        run.write_config({"a": 1})
        raise DataError("bad image")
    assert not (tmp_path / "new").exists()  # the same command runs again once the input is fixed

    started = RunDir.create(tmp_path / "started")
    with pytest.raises(HnanasError), started.exclusive(), started.discard_if_refused():
        save_checkpoint(started.file("last.pt"), {"epoch": 1})
        raise DataError("bad image")
    assert started.has_checkpoint()  # it has something to resume

    resumed = RunDir.create(tmp_path / "started", resume=True)
    started.file("last.pt").unlink()
    with pytest.raises(HnanasError), resumed.discard_if_refused():
        raise DataError("bad image")
    assert started.file(".lock").exists()  # a resumed run is never discarded

    bug = RunDir.create(tmp_path / "bug")
    with pytest.raises(RuntimeError), bug.discard_if_refused():
        bug.write_config({"a": 1})
        raise RuntimeError("a bug, not bad input")
    assert bug.config_path.exists()

    (tmp_path / "given").mkdir()  # an empty folder the user made stays (emptied), only its content goes
    given = RunDir.create(tmp_path / "given")
    with pytest.raises(HnanasError), given.discard_if_refused():
        given.write_config({"a": 1})
        raise DataError("bad image")
    assert (tmp_path / "given").is_dir() and not any((tmp_path / "given").iterdir())


def test_profile_import_refuses_a_zip_slip_archive(tiny, tmp_path):
    path = tmp_path / "in" / "results.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("results.csv", "id\n")
        z.writestr("../../evil.txt", "x")
    with pytest.raises(HnanasError, match="zip-slip"):
        import_results(path, tiny, "cpu")
    assert not (tmp_path / "evil.txt").exists()
    (tmp_path / "not.zip").write_text("plain text")
    with pytest.raises(HnanasError, match="not a zip archive"):
        import_results(tmp_path / "not.zip", tiny, "cpu")


CHEAP_ROWS = ["truncated PNG", "table with NaN entry", "non-hnanas pickle as checkpoint", "read-only output folder"]


@pytest.mark.slow
def test_bench_faults_cheap_rows_pass_as_real_commands(tmp_path):
    """Four rows of the matrix as real ``hnanas`` subprocesses (the whole matrix: ``python bench/faults.py``)."""
    out = tmp_path / "faults.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "faults.py"), "--only", ",".join(CHEAP_ROWS), "--json",
                           str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    result = json.loads(out.read_text())
    assert [r["fault"] for r in result["rows"]] == CHEAP_ROWS
    failed = [(r["fault"], r["why"]) for r in result["rows"] if not r["ok"]]
    assert done.returncode == 0 and not failed, (failed, done.stderr[-2000:])
    assert all(r["rc"] == 2 and r["error"].startswith("hnanas: error: ") for r in result["rows"])
    assert "| truncated PNG |" in done.stdout
