"""The four commands of ``bench/kill_resume.py``: how each starts, resumes and is compared with an uninterrupted run.

A case is built per row (``cls(ws)``) on the shared workspace from :func:`prepare` (``ws/base``: 24 synthetic images
of 64x64, ``ws/tiny_cpu_t1.csv``: a latency table of the tiny space, ``ws/retrain.yaml``: no prediction figure, one
latency session). ``results(folder)`` returns the values that must be identical, tensors as SHA-256 digests.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from fault_kit import tiny_table

FP32 = ["--crop-size", "32", "--batch-size", "4", "--precision", "fp32"]


def prepare(ws: Path, hnanas) -> None:
    result = hnanas(["data", "synth", "--out", str(ws / "base"), "--n", "24", "--size", "64"])
    if result.returncode != 0:
        raise RuntimeError(f"hnanas data synth failed: {result.stderr}")
    tiny_table().save(ws / "tiny_cpu_t1.csv")
    (ws / "retrain.yaml").write_text("train: {figure_images: 0}\nlatency: {sessions: 1}\n")


def digest(state: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def csv_rows(path: Path, drop: str = "seconds") -> list[dict]:
    """A CSV log's rows without its timing column."""
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != drop} for r in csv.DictReader(f)]


def checkpoint_digest(path: Path, key: str) -> str:
    from hnanas.runs import load_checkpoint

    return digest(load_checkpoint(path)[key])


def file_set(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


class KillCase:
    name = ""
    hooks: list[str] = []  # NAME:K of the writes the hook kills inside (checkpoints and tables)
    expected_s = 30.0  # a runtime guess when there is no uninterrupted run
    saved = ""  # glob (in the output folder) of the files that hold saved progress
    shrink = True  # kill windows shrink as the run gets further (False: each attempt redoes most before saving)
    same = "results identical to the uninterrupted run's"

    def __init__(self, ws: Path):
        self.ws = ws

    def fresh(self, out: Path) -> list[str]:
        raise NotImplementedError

    def resume(self, out: Path) -> list[str]:
        return self.fresh(out)

    def folder(self, out: Path) -> Path:
        return out

    def files(self, folder: Path) -> set[str]:
        return file_set(folder)

    def results(self, folder: Path) -> dict:
        raise NotImplementedError

    def after_kill(self, folder: Path) -> None:
        pass

    def compare(self, folder: Path, reference: dict | None) -> list[str]:
        if reference is None:
            return []
        got = self.results(folder)
        return [f"{k} differs from the uninterrupted run's" for k in reference if got.get(k) != reference[k]]


class Retrain(KillCase):
    name, hooks, expected_s, saved = "retrain", ["last.pt:2"], 25.0, "last.pt"
    same = "weights (best.pt, last.pt), metrics.json and retrain_log.csv bit-identical to the uninterrupted run's"

    def fresh(self, out: Path) -> list[str]:
        return ["retrain", "--genotype", "chain_res3", "--space", "tiny", "--dataset", str(self.ws / "base"), "--out",
                str(out), "--epochs", "3", "--threads", "1", *FP32, "--config", str(self.ws / "retrain.yaml")]

    def resume(self, out: Path) -> list[str]:
        return ["retrain", "--out", str(out), "--resume"]

    def results(self, folder: Path) -> dict:
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["training"].pop("seconds", None)
        return {"metrics.json": metrics, "retrain_log.csv": csv_rows(folder / "retrain_log.csv"),
                "best.pt weights": checkpoint_digest(folder / "best.pt", "model_state"),
                "last.pt weights": checkpoint_digest(folder / "last.pt", "model_state")}


class Search(KillCase):
    name, expected_s, saved = "search", 20.0, "search_state.pt"
    hooks = ["search_state.pt:1", "search_state.pt:3", "genotype.json:1"]
    same = "genotype.json, search_log.csv, arch/ snapshots and supernet weights bit-identical to the uninterrupted run's"

    def fresh(self, out: Path) -> list[str]:
        return ["search", "--space", "tiny", "--epochs", "2", *FP32, "--table", str(self.ws / "tiny_cpu_t1.csv"),
                "--dataset", str(self.ws / "base"), "--out", str(out)]

    def resume(self, out: Path) -> list[str]:
        return ["search", "--out", str(out), "--resume"]

    def results(self, folder: Path) -> dict:
        arch = {p.name: json.loads(p.read_text()) for p in sorted((folder / "arch").glob("*.json"))}
        return {"genotype.json": json.loads((folder / "genotype.json").read_text()),
                "stage1_genotype.json": json.loads((folder / "stage1_genotype.json").read_text()),
                "search_log.csv": csv_rows(folder / "search_log.csv"), "arch/": arch,
                "supernet weights": checkpoint_digest(folder / "search_state.pt", "model")}


class Profile(KillCase):
    """Timings differ between any two runs: the promise is that a rerun continues, keeping what was measured."""

    name, hooks, expected_s, saved = "profile", ["tiny.partial.csv:2", "tiny.csv:1"], 55.0, "tiny.partial.csv"
    shrink = False  # every rerun exports and times its calibration networks again before measuring

    @property
    def same(self) -> str:
        return (f"every entry of the uninterrupted run's measured once; the {len(self.kept)} entries saved before "
                f"the kills kept unchanged")

    def __init__(self, ws: Path):
        super().__init__(ws)
        self.kept: dict[str, float] = {}  # entry key -> median_ms in a partial table seen after a kill
        self.unreadable: list[str] = []

    def fresh(self, out: Path) -> list[str]:
        return ["profile", "--space", "tiny", "--threads", "1", "--sessions", "1", "--out", str(out / "tiny.csv")]

    def after_kill(self, folder: Path) -> None:
        import pandas as pd

        partial = folder / "tiny.partial.csv"
        if partial.is_file():
            try:
                frame = pd.read_csv(partial, keep_default_na=False)
            except Exception as exc:  # noqa: BLE001 - a torn partial table is the finding
                self.unreadable.append(f"tiny.partial.csv unreadable after a kill: {exc}")
                return
            self.kept.update(dict(zip(keys(frame), frame["median_ms"])))

    def results(self, folder: Path) -> dict:
        import pandas as pd

        return {"entries": sorted(keys(pd.read_csv(folder / "tiny.csv", keep_default_na=False)))}

    def compare(self, folder: Path, reference: dict | None) -> list[str]:
        import pandas as pd

        from hnanas.latency.entries import space_entries
        from hnanas.latency.table import LatencyTable
        from hnanas.nas.space import load_space

        space = load_space("tiny")
        LatencyTable.load(folder / "tiny.csv", space=space)  # the table hnanas would price with
        frame = pd.read_csv(folder / "tiny.csv", keep_default_na=False)
        final = dict(zip(keys(frame), frame["median_ms"]))
        why = list(self.unreadable)
        if reference is not None and sorted(final) != reference["entries"]:
            why.append("other entries than the uninterrupted run's")
        missing = {e.key for e in space_entries(space)} - set(final)
        why += [f"{len(missing)} entries of the space missing"] * bool(missing)
        why += ["an entry measured twice"] * (len(final) != len(frame) or bool((frame["sessions"] != 1).any()))
        changed = [k for k, v in self.kept.items() if k in final and float(f"{v:.5g}") != final[k]]
        why += [f"{len(changed)} of {len(self.kept)} entries measured before a kill were measured again"] * bool(changed)
        return why


def keys(frame) -> list[str]:
    from hnanas.latency.entries import KEY_COLUMNS, Entry

    return [Entry(**{c: r[c] for c in KEY_COLUMNS}).key for r in frame.to_dict("records")]


SWEEP_ATTRS = ("val_iou", "test_iou", "test_niou", "test_pd", "test_fa", "params", "macs", "predicted_ms")


class Sweep(KillCase):
    name, hooks, expected_s, saved = "sweep", ["config.yaml:1", "last.pt:4"], 80.0, "kr/*/search_state.pt"
    same = ("each point done once, with genotype, retrained weights, validation and test metrics identical to the "
            "uninterrupted sweep's (the measured latency is a timing)")

    def fresh(self, out: Path) -> list[str]:
        return ["sweep", "--study", "kr", "--latency-weights", "0,1", "--runs-dir", str(out), "--dataset",
                str(self.ws / "base"), "--table", str(self.ws / "tiny_cpu_t1.csv"), "--retrain-config",
                str(self.ws / "retrain.yaml"), "--space", "tiny", "--crop-size", "32", "--batch-size", "4", "--epochs",
                "1", "--precision", "fp32", "--retrain-epochs", "2", "--retrain-crop-size", "32",
                "--retrain-batch-size", "4", "--retrain-threads", "1", "--retrain-precision", "fp32"]

    def points(self, folder: Path) -> dict:
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        trials = optuna.load_study(study_name="kr", storage=f"sqlite:///{folder / 'kr.db'}").get_trials()
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        return {"trials": trials, "done": {t.params["latency_weight"]: t for t in done}, "n_done": len(done)}

    def files(self, folder: Path) -> set[str]:  # per point (trial numbers in folder names differ after a kill)
        done = self.points(folder)["done"]
        return {f"l{lam}/{f}" for lam, t in done.items() for f in file_set(Path(t.user_attrs["run_dir"]))}

    def results(self, folder: Path) -> dict:
        found = self.points(folder)
        out = {"points done": sorted(found["done"]), "COMPLETE trials": found["n_done"]}
        for lam, t in found["done"].items():
            run = Path(t.user_attrs["run_dir"])
            out[f"l{lam}"] = {"values0": t.values[0], **{k: t.user_attrs[k] for k in SWEEP_ATTRS},
                              "nodes": json.loads((run / "genotype.json").read_text())["nodes"],
                              "weights": checkpoint_digest(run / "retrain" / "best.pt", "model_state")}
        return out


CASES = [Retrain, Search, Profile, Sweep]
