"""The rows of ``bench/faults.py``: each builds one fault in its own folder and returns the command to run on it.

``CASES`` lists ``(name, build, cheap)``; ``build(ws, row)`` gets the shared workspace (``ws/base``: the synthetic
dataset, ``ws/tiny_cpu_t1.csv``: a latency table of the tiny space, ``ws/good.pt``: a valid checkpoint) and the
row's own folder, and returns a :class:`fault_kit.Case`. Cheap rows train nothing when hnanas behaves.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

from fault_kit import (TRAIN, Case, dataset, edited_table, first_train_id, mounted_tmpfs, no_run_left, retrain, search,
                       unchanged, unmount)

def truncated_png(ws: Path, row: Path) -> Case:
    data = dataset(ws, row)
    image = data / "images" / f"{first_train_id(data)}.png"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    return Case(retrain(data, row / "run"), f"images/{image.name}", no_run_left(row / "run"))


def corrupt_png(ws: Path, row: Path) -> Case:
    data = dataset(ws, row)
    image = data / "images" / f"{first_train_id(data)}.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    return Case(retrain(data, row / "run"), f"images/{image.name}", no_run_left(row / "run"))


def mask_values(ws: Path, row: Path) -> Case:
    import numpy as np
    from PIL import Image

    data = dataset(ws, row)
    mask = data / "masks" / f"{first_train_id(data)}.png"
    values = np.zeros((64, 64), np.uint8)
    values[10:20, 10:20], values[30:40, 30:40] = 100, 200
    Image.fromarray(values).save(mask)
    return Case(retrain(data, row / "run"), f"masks/{mask.name}", no_run_left(row / "run"))


def size_mismatch(ws: Path, row: Path) -> Case:
    from PIL import Image

    data = dataset(ws, row)
    mask = data / "masks" / f"{first_train_id(data)}.png"
    Image.open(mask).resize((48, 48), Image.Resampling.NEAREST).save(mask)
    return Case(retrain(data, row / "run", "--on-mismatch", "error"), f"masks/{mask.name}", no_run_left(row / "run"))


def empty_split(ws: Path, row: Path) -> Case:
    data = dataset(ws, row)
    (data / "train.txt").write_text("")
    return Case(retrain(data, row / "run"), "train.txt", no_run_left(row / "run"))


def missing_ids(ws: Path, row: Path) -> Case:
    data = dataset(ws, row)
    with open(data / "train.txt", "a") as f:
        f.write("ghost_7\n")
    return Case(retrain(data, row / "run"), "ghost_7", no_run_left(row / "run"))


def no_layout(ws: Path, row: Path) -> Case:
    data = row / "pictures"
    data.mkdir()
    for p in sorted((ws / "base" / "images").glob("*.png"))[:3]:
        shutil.copy(p, data / p.name)
    return Case(retrain(data, row / "run"), str(data), no_run_left(row / "run"))


def table_other_space(ws: Path, row: Path) -> Case:
    from hnanas.latency.table import TABLES_DIR

    for suffix in (".csv", ".json"):
        shutil.copy(TABLES_DIR / f"rep_nested_cpu_t1{suffix}", row / f"rep_nested_cpu_t1{suffix}")
    table = row / "rep_nested_cpu_t1.csv"
    return Case(search(table, row / "run", ws / "base"), table.name, no_run_left(row / "run"))


def table_other_device(ws: Path, row: Path) -> Case:
    table = edited_table(ws, row, meta={"device": "gpu"})
    return Case(search(table, row / "run", ws / "base", "--latency-device", "cpu"), table.name,
                no_run_left(row / "run"))


def table_other_ort(ws: Path, row: Path) -> Case:
    table = edited_table(ws, row, meta={"onnxruntime": "1.10.0"})
    out = row / "run"
    return Case(search(table, out, ws / "base"), table.name, rc=0, warning=True,
                check=lambda: [] if (out / "genotype.json").is_file() else ["no genotype.json"])


def table_other_cpu(ws: Path, row: Path) -> Case:
    """A cpu table profiled on another CPU model (the shipped tables come from an AMD EPYC; some of our machines
    are Intel Xeons): named once with the command that prices this machine, and `validate` leaves it as it is."""
    table = edited_table(ws, row, meta={"cpu_model": "Intel(R) Xeon(R) Platinum 8581C CPU @ 2.10GHz",
                                        "cpu_identity": "GenuineIntel family 6 model 207 stepping 2; avx2, avx512f, "
                                                        "avx512_bf16, amx_bf16, amx_int8"})
    return Case(["profile", "validate", "--table", str(table), "--n", "2"], table.name, unchanged(row), rc=0,
                warning=True)


def table_nan(ws: Path, row: Path) -> Case:
    table = edited_table(ws, row, value="nan")
    return Case(search(table, row / "run", ws / "base"), table.name, no_run_left(row / "run"))


def table_negative(ws: Path, row: Path) -> Case:
    table = edited_table(ws, row, value="-0.5")
    return Case(search(table, row / "run", ws / "base"), table.name, no_run_left(row / "run"))


def _genotype(ws: Path, row: Path, edit) -> Path:
    from hnanas.nas.genotype import named_genotypes
    from hnanas.nas.space import load_space

    g = named_genotypes(load_space("tiny"))["chain_res3"].to_dict()
    edit(g["nodes"])
    path = row / "genotype.json"
    path.write_text(json.dumps(g))
    return path


def genotype_unknown_op(ws: Path, row: Path) -> Case:
    path = _genotype(ws, row, lambda nodes: nodes["1_0"].update(op="conv99"))
    return Case(["retrain", "--genotype", str(path), "--space", "tiny", "--dataset", str(ws / "base"), "--out",
                 str(row / "run"), *TRAIN], path.name, no_run_left(row / "run"))


def genotype_cycle(ws: Path, row: Path) -> Case:
    def cycle(nodes):
        nodes["1_0"]["inputs"] = ["0_0", "1_1"]
        nodes["1_1"]["inputs"] = ["1_0"]
    path = _genotype(ws, row, cycle)
    return Case(["retrain", "--genotype", str(path), "--space", "tiny", "--dataset", str(ws / "base"), "--out",
                 str(row / "run"), *TRAIN], path.name, no_run_left(row / "run"))


def checkpoint_other_version(ws: Path, row: Path) -> Case:
    import torch

    state = torch.load(ws / "good.pt", weights_only=True)
    state["format"] = "hnanas-checkpoint/0"
    path = row / "best.pt"
    torch.save(state, path)
    return Case(["evaluate", "--checkpoint", str(path), "--dataset", str(ws / "base")], path.name)


class _Marker:
    """Unpickling this calls ``open(path, "w")``: a file appears if anything unpickles it."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def foreign_pickle(ws: Path, row: Path) -> Case:
    control = row / "control_marker"
    pickle.loads(pickle.dumps(_Marker(control))).close()  # a plain unpickler does create the file ...
    assert control.is_file(), "the marker pickle does not work"
    marker = row / "MARKER"
    path = row / "model.pt"
    path.write_bytes(pickle.dumps({"model": _Marker(marker)}))
    return Case(["evaluate", "--checkpoint", str(path), "--dataset", str(ws / "base")], path.name,
                lambda: [f"UNPICKLED: {marker.name} created"] if marker.exists() else [])  # ... hnanas must not


def space_wrong_type(ws: Path, row: Path) -> Case:
    from hnanas.shipped import shipped_dir

    text = (shipped_dir("search_spaces") / "tiny.yaml").read_text()
    path = row / "tiny_bad.yaml"
    path.write_text(text.replace("widths: [8, 16, 16]", "widths: wide"))
    return Case(["retrain", "--genotype", "chain_res3", "--space", str(path), "--dataset", str(ws / "base"), "--out",
                 str(row / "run"), *TRAIN], path.name, no_run_left(row / "run"))


def zip_slip(ws: Path, row: Path) -> Case:
    inner = row / "bundle"
    inner.mkdir()
    path = inner / "results.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("results.csv", "id,kind\n")
        z.writestr("results.json", "{}")
        z.writestr("../../evil.txt", "pwned")
    escaped = [row / "evil.txt", ws / "evil.txt", inner / "evil.txt"]
    return Case(["profile", "import", str(path), "--space", "tiny", "--out", str(row / "t.csv")], path.name,
                lambda: [f"wrote {p.name} outside" for p in escaped if p.exists()] + no_run_left(row / "t.csv")())


def readonly_out(ws: Path, row: Path) -> Case:
    folder = row / "ro"
    if mounted_tmpfs(folder, "1m", readonly=True):
        cleanup = unmount(folder)
    else:  # not root: permission bits do it
        folder.mkdir(exist_ok=True)
        folder.chmod(0o555)
        cleanup = lambda: folder.chmod(0o755)  # noqa: E731
    return Case(retrain(ws / "base", folder / "run"), str(folder), cleanup=cleanup)


def other_run_out(ws: Path, row: Path) -> Case:
    out = row / "theirs"
    out.mkdir()
    shutil.copy(ws / "good.pt", out / "best.pt")
    (out / "metrics.json").write_text('{"iou": 0.5}\n')
    return Case(retrain(ws / "base", out), out.name, unchanged(out))


def other_run_resume(ws: Path, row: Path) -> Case:
    from hnanas.config import to_dict
    from hnanas.fileio import write_yaml
    from hnanas.search.config import SearchConfig

    out = row / "search_run"
    write_yaml(out / "config.yaml", to_dict(SearchConfig()))
    (out / "genotype.json").write_text((ws / "tiny_cpu_t1.json").read_text())
    return Case(["retrain", "--out", str(out), "--resume"], "config.yaml", unchanged(out))


def disk_full(ws: Path, row: Path) -> Case:
    disk = row / "disk"
    if not mounted_tmpfs(disk, "64m"):
        raise RuntimeError("cannot mount a tmpfs here (needs root)")
    out = disk / "run"
    seen: dict = {}

    def fill_after_first_checkpoint(proc: subprocess.Popen) -> None:
        deadline = time.time() + 240
        while not (out / "last.pt").is_file() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        st = os.statvfs(disk)
        with open(disk / "filler", "wb") as f:  # leave 48 KiB: small log appends fit, a checkpoint does not
            f.write(b"\0" * max(st.f_bavail * st.f_frsize - 48 * 1024, 0))
        seen["filled"] = True

    def check() -> list[str]:  # the checkpoints written before the disk filled are whole and usable
        from hnanas.errors import HnanasError
        from hnanas.runs import load_checkpoint

        if not seen.get("filled") or not (out / "last.pt").is_file():
            return ["the run ended before its first checkpoint"]
        try:
            epochs = [load_checkpoint(out / name)["epoch"] for name in ("last.pt", "best.pt")
                      if (out / name).is_file()]
        except HnanasError as exc:
            return [f"a previous checkpoint is damaged: {exc}"]
        return [] if epochs[0] in (1, 2) else [f"last.pt holds epoch {epochs[0]}"]

    argv = retrain(ws / "base", out)
    argv[argv.index("--epochs") + 1] = "3"
    return Case(argv, "disk/run/", check, during=fill_after_first_checkpoint, cleanup=unmount(disk))


CASES = [  # (name, build, cheap: trains nothing when hnanas behaves)
    ("truncated PNG", truncated_png, True),
    ("corrupt PNG", corrupt_png, True),
    ("mask values 0/100/200", mask_values, True),
    ("mask size != image size (--on-mismatch error)", size_mismatch, True),
    ("empty split file", empty_split, True),
    ("ids in a split missing", missing_ids, True),
    ("no recognisable layout", no_layout, True),
    ("table of another space", table_other_space, True),
    ("table of another device", table_other_device, True),
    ("table of another onnxruntime", table_other_ort, False),
    ("cpu table from another CPU model", table_other_cpu, True),
    ("table with NaN entry", table_nan, True),
    ("table with negative entry", table_negative, True),
    ("genotype with unknown op", genotype_unknown_op, True),
    ("genotype with a cycle", genotype_cycle, True),
    ("checkpoint of another version", checkpoint_other_version, True),
    ("non-hnanas pickle as checkpoint", foreign_pickle, True),
    ("space YAML with a wrong type", space_wrong_type, True),
    ("bundle zip with ../ paths", zip_slip, True),
    ("read-only output folder", readonly_out, True),
    ("output folder of another run", other_run_out, True),
    ("--resume on another run's folder", other_run_resume, True),
    ("disk full during a checkpoint write", disk_full, False),
]
