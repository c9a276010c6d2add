"""bench/search_vs_random.py: plan (searched, latency-matched random, ablation), retrain per seed, measure, judge;
resumes without redoing anything; ``hnanas report`` shows the result."""

from __future__ import annotations

import shutil

import pytest

from _helpers import load_bench, synthetic_table
from hnanas.data.synthetic import SynthParams, write_synthetic
from hnanas.errors import ConfigError
from hnanas.fileio import read_json, write_text
from hnanas.latency.table import LatencyTable
from hnanas.nas.genotype import load_genotype, make_genotype
from hnanas.nas.space import load_space
from hnanas.report.build import write_report
from hnanas.runs import RunDir
from hnanas.search.config import resolve_config


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    """A finished-looking tiny search run: config (with its table), stage-1 topology, genotype, log."""
    root = tmp_path_factory.mktemp("svr")
    write_synthetic(root / "syn", SynthParams(n=24, size=64, seed=0))
    space = load_space("tiny")
    table = synthetic_table(space).save(root / "tiny_cpu_t1.csv")
    cfg = resolve_config("quick", {"space": "tiny", "table": str(table), "data.dataset": str(root / "syn"),
                                   "data.val_fraction": 0.25})
    run = RunDir.create(root / "out" / "search")  # where the bench puts the search it runs itself
    run.write_config(cfg)
    inputs = {"0_0": ["input"], "1_0": ["0_0"], "2_0": ["1_0"], "0_1": ["0_0", "1_0"], "1_1": ["1_0", "2_0"],
              "0_2": ["0_1", "1_1"]}
    make_genotype(space, inputs, "res3", name="stage1").save(run.file("stage1_genotype.json"))
    make_genotype(space, inputs, {"0_0": "res3", "1_0": "mb3e2", "2_0": "repconv", "0_1": "res3", "1_1": "mb3e2",
                                  "0_2": "repconv"}, name="searched").save(run.file("genotype.json"))
    write_text(run.file("search_log.csv"), "step,seconds\n1,2.5\n2,3.5\n")
    return root


def test_search_vs_random_plans_retrains_measures_and_judges(search_run, capsys):
    root = search_run
    bench = load_bench("search_vs_random")
    out = root / "out"
    argv = ["--search", str(out / "search"), "--dataset", str(root / "syn"), "--k", "2", "--seeds", "3",
            "--baselines", "--epochs", "1", "--crop", "32", "--batch-size", "4", "--jobs", "1",
            "--precision", "fp32", "--out", str(out), "--record", str(root / "recorded.json")]
    ledger = root / "ledger"
    assert bench.main([*argv, "--ledger", str(ledger)]) == 0
    plan = read_json(out / "networks.json")
    space = load_space("tiny")
    table = LatencyTable.load(root / "tiny_cpu_t1.csv", space=space)
    target = plan["target_ms"]
    roles = [n["role"] for n in plan["networks"]]
    assert roles == ["searched", "ablation", "random", "random"]
    # the searched network is copied beside the random ones, so the ledger keeps it whatever becomes of the search
    assert plan["networks"][0]["genotype"] == str(out / "genotypes" / "searched.json")
    assert (load_genotype(ledger / "genotypes" / "searched.json", space).nodes
            == load_genotype(out / "search" / "genotype.json", space).nodes)
    for n in plan["networks"]:
        if n["role"] == "random":  # within the band, by the same table
            assert abs(n["predicted_ms"] - target) <= 0.05 * target
    result = read_json(out / "search_vs_random.json")
    assert read_json(root / "recorded.json") == result
    assert result["search_seconds"] == 6.0 and result["budget"]["seeds"] == [3]
    nets = {n["name"]: n for n in result["networks"]}
    for n in nets.values():  # one seed here (each retrain exports twice: seconds); the statistics have own tests
        assert n["seeds"] == [3] and len(n["iou_values"]) == 1 and n["measured_ms"] > 0
        row = read_json(out / "nets" / n["name"] / "seed3" / "metrics.json")
        assert n["iou_mean"] == row["iou"] and n["iou_std"] is None and n["params"] == row["params"]
    # the ablation runs the stage-1 topology with the ops the latency term alone picks: never slower than searched
    assert nets["latency_only"]["predicted_ms"] <= nets["searched"]["predicted_ms"] + 1e-9
    ablation = load_genotype(out / "genotypes" / "latency_only.json", space)
    assert table.predict(ablation, space).total_ms == pytest.approx(nets["latency_only"]["predicted_ms"])
    verdict = result["verdict"]
    assert verdict["complete"] and verdict["n_random"] == 2
    iou = verdict["searched"]["iou"]
    means = [nets[f"random_{i}"]["iou_mean"] for i in range(2)]
    assert iou["beats"] == sum(m < nets["searched"]["iou_mean"] for m in means)
    assert iou["gap"] == pytest.approx(nets["searched"]["iou_mean"] - sum(means) / 2)
    assert iou["gap_ci95"] is None and iou["pooled_seed_std"] is None  # one seed: no seed spread to pool
    assert result["retrains"] == {"finished": 4, "planned": 4}
    assert (out / "search_vs_random.png").stat().st_size > 0
    text = (out / "search_vs_random.md").read_text()
    assert "| searched | searched | 1 |" in text and "above" in text
    mtimes = {p: p.stat().st_mtime for p in out.glob("nets/*/seed*/metrics.json")}
    assert len(mtimes) == 4
    capsys.readouterr()
    assert bench.main(argv) == 0  # resumed: nothing retrained again
    assert {p: p.stat().st_mtime for p in out.glob("nets/*/seed*/metrics.json")} == mtimes
    with pytest.raises(SystemExit, match="was planned with"):
        bench.main([*argv[:-4], "--k", "3", "--out", str(out)])
    report = write_report([out], out=out / "report")  # the search run, and the comparison's section
    index = report.index.read_text()
    assert report.runs == 1 and "## Search vs random at the same latency (out)" in index
    assert "| searched | searched | 1 |" in index and (out / "report/figures/search_vs_random_out.png").is_file()
    check_the_ledger_carries_the_comparison_into_a_fresh_session(bench, [*argv, "--ledger", str(ledger)], result,
                                                                 out, ledger, capsys)


def check_the_ledger_carries_the_comparison_into_a_fresh_session(bench, argv, first, out, ledger, capsys):
    """Run folders do not survive a machine session; the ledger (committed) does: a fresh output folder goes on
    from the finished retrains and retrains only the missing ones."""
    assert read_json(ledger / "search_vs_random.json")["rows"] == first["rows"]
    assert sorted(p.parent.parent.name for p in ledger.glob("nets/*/seed3/metrics.json")) == sorted(
        n["name"] for n in first["networks"])
    assert not list(ledger.rglob("*.pt")) and not list(ledger.rglob("*.onnx"))
    shutil.rmtree(ledger / "nets" / "random_1")  # as if the last session had stopped before this retrain
    shutil.rmtree(out / "nets")  # the next session starts from a clean checkout (the search is --search here)
    for name in ("networks.json", "latency.json", "search_vs_random.json"):
        (out / name).unlink()
    capsys.readouterr()
    assert bench.main([*argv, "--no-train"]) == 0  # a partial summary, nothing trained
    partial = read_json(out / "search_vs_random.json")
    assert partial["retrains"] == {"finished": 3, "planned": 4} and not (out / "nets" / "random_1").exists()
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith(("retrain ", "latency"))]
    assert "--no-train" not in partial["command"]  # the command that trained
    shutil.rmtree(out / "nets")
    assert bench.main(argv) == 0
    retrained = [line for line in capsys.readouterr().out.splitlines() if line.startswith("retrain ")]
    assert len(retrained) == 1 and retrained[0].startswith("retrain 4/4 done: nets/random_1/seed3")  # only it
    again = read_json(out / "search_vs_random.json")
    kept = [r for r in first["rows"] if r["net"] != "random_1"]
    assert [r for r in again["rows"] if r["net"] != "random_1"] == kept
    assert again["retrains"] == {"finished": 4, "planned": 4} and (ledger / "nets/random_1/seed3/metrics.json").exists()
    assert read_json(out / "latency.json") == read_json(ledger / "latency.json")  # timed once, not again



def test_a_comparison_at_a_given_latency_reuses_another_ledgers_retrains_of_the_same_networks(search_run, capsys):
    """--at-ms draws the random networks at a given latency (the searched one must lie in its band); --reuse
    copies another comparison's finished retrains of the same genotypes, budget and data instead of training."""
    root = search_run
    bench = load_bench("search_vs_random")
    common = ["--search", str(root / "out" / "search"), "--dataset", str(root / "syn"), "--k", "2", "--seeds", "3",
              "--baselines", "--no-ablation", "--epochs", "1", "--crop", "32", "--batch-size", "4", "--jobs", "1",
              "--precision", "fp32"]
    first = root / "reuse_a"
    assert bench.main([*common, "--out", str(first), "--ledger", str(root / "ledger_a")]) == 0
    plan = read_json(first / "networks.json")
    assert [n["role"] for n in plan["networks"]] == ["searched", "random", "random"]  # --no-ablation
    at = plan["target_ms"]  # the first comparison's latency: the same random draws
    # as a ledger of a search made in its comparison's folder keeps it (LEDGER_FILES), so that a comparison whose
    # search found the same network reuses that network's retrains too
    (root / "ledger_a" / "search").mkdir()
    shutil.copy(root / "out" / "search" / "genotype.json", root / "ledger_a" / "search" / "genotype.json")
    capsys.readouterr()
    second = root / "reuse_b"
    assert bench.main([*common, "--out", str(second), "--at-ms", str(at), "--reuse", str(root / "ledger_a")]) == 0
    out = capsys.readouterr().out
    # the random networks (the other ledger keeps their genotypes) and the searched one (the same search's network)
    assert f"reuse {root / 'ledger_a'}: 3 finished retrains copied (3 of this comparison's retrains" in out
    assert not [line for line in out.splitlines() if line.startswith("retrain ")]  # nothing trained
    again = read_json(second / "networks.json")
    assert again["target_ms"] == at and again["settings"]["at_ms"] == at
    assert [n["predicted_ms"] for n in again["networks"]] == [n["predicted_ms"] for n in plan["networks"]]
    assert read_json(second / "search_vs_random.json")["reused_from"] == {
        "ledger": str(root / "ledger_a"),
        "retrains": ["nets/random_0/seed3", "nets/random_1/seed3", "nets/searched/seed3"]}
    rows = [read_json(f / "search_vs_random.json")["rows"] for f in (first, second)]
    assert rows[1] == rows[0]
    capsys.readouterr()
    assert bench.main([*common, "--out", str(second), "--at-ms", str(at), "--reuse", str(root / "ledger_a")]) == 0
    assert ": 0 finished retrains copied (3 of this comparison's retrains are that ledger's)" in capsys.readouterr().out
    third = root / "reuse_c"  # another training budget: nothing is reused
    assert bench.main([*common[:-10], "--epochs", "2", *common[-8:], "--out", str(third), "--at-ms", str(at),
                       "--reuse", str(root / "ledger_a"), "--no-train"]) == 0
    assert f"reuse {root / 'ledger_a'}: 0 finished retrains copied (0 of" in capsys.readouterr().out
    other = root / "ledger_other"  # a ledger whose search found another network: only the random ones are reused
    shutil.copytree(root / "ledger_a", other)
    shutil.copy(other / "genotypes" / "random_0.json", other / "search" / "genotype.json")
    assert bench.main([*common, "--out", str(root / "reuse_e"), "--at-ms", str(at), "--reuse", str(other),
                       "--no-train"]) == 0
    assert f"reuse {other}: 2 finished retrains copied (2 of" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is not within 5 % of --at-ms"):
        bench.main([*common, "--out", str(root / "reuse_d"), "--at-ms", str(plan["target_ms"] * 2)])
    with pytest.raises(SystemExit, match="--search-set changes the search made here"):
        bench.main([*common, "--out", str(root / "reuse_d"), "--search-set", "halving.trials=3"])


def test_reuse_needs_the_same_budget_data_and_seed():
    from hnanas.pipeline.ledger import same_budget

    base = {"optim": {"name": "adamw", "lr": 5e-3}, "train": {"epochs": 8, "batch_size": 8, "seed": 0, "threads": 1,
                                                              "device": "auto"},
            "data": {"dataset": "/a/NUDT-SIRST", "split": "50_50", "crop_size": 128}}
    moved = {**base, "data": {**base["data"], "dataset": "../shared/datasets/NUDT-SIRST"},
             "train": {**base["train"], "threads": 2}}
    assert same_budget(base, moved)  # where the data lies and the thread count do not matter
    for section, key, value in (("train", "epochs", 9), ("train", "seed", 1), ("data", "crop_size", 64),
                                ("data", "split", "other"), ("optim", "lr", 1e-3), ("data", "dataset", "/a/NUAA"),
                                ("train", "device", "cuda"), ("optim", "warmup_epochs", 1.0),
                                ("train", "output_prior", 0.01)):
        assert not same_budget(base, {**base, section: {**base[section], key: value}})
    # a ledger written before optim.warmup_epochs and train.output_prior existed trained without them
    assert same_budget(base, {**base, "optim": {**base["optim"], "warmup_epochs": 0.0},
                              "train": {**base["train"], "output_prior": None}})


def test_reuse_never_mixes_thresholds_chosen_on_two_grids():
    from hnanas.metrics import THRESHOLD_GRID, THRESHOLD_GRID_V1
    from hnanas.pipeline.ledger import same_budget

    base = {"optim": {"name": "adamw"}, "train": {"epochs": 8, "seed": 0, "select_threshold": True},
            "data": {"dataset": "NUAA-SIRST", "split": "idx_427"}}
    now = {**base, "train": {**base["train"], "threshold_grid": list(THRESHOLD_GRID)}}  # as config.yaml holds it
    then = {**base, "train": {**base["train"], "threshold_grid": list(THRESHOLD_GRID_V1)}}
    assert same_budget(now, now) and not same_budget(now, then)
    # a retrain written before the key existed chose on the 0.05-step grid: one of its kind, not of today's
    assert same_budget(then, base) and not same_budget(now, base)
    # at the fixed threshold the grid is never read: retrains at 0.5 stay reusable across it
    fixed = {k: {**v, "select_threshold": False} if k == "train" else v for k, v in now.items()}
    assert same_budget(fixed, {**base, "train": {**base["train"], "select_threshold": False}})


def test_search_set_changes_the_config_of_the_search_made_here(monkeypatch, tmp_path):
    bench = load_bench("search_vs_random")
    seen = {}

    def stop(cfg, out):
        seen["cfg"] = cfg
        raise SystemExit("stopped before searching")

    monkeypatch.setattr(bench, "search_once", stop)
    with pytest.raises(SystemExit, match="stopped before searching"):
        bench.main(["--search-preset", "cpu", "--at-ms", "20", "--search-set", "halving.min_epochs=1",
                    "--search-set", "halving.trials=20", "--out", str(tmp_path / "out")])
    h = seen["cfg"].halving
    assert (h.min_epochs, h.trials, h.max_epochs) == (1, 20, 8)  # changed, changed, the preset's
    assert seen["cfg"].target_latency_ms == pytest.approx(21.0)  # --at-ms's band still applies
    with pytest.raises(ConfigError, match="unknown key 'halving.trial'"):
        bench.main(["--search-preset", "cpu", "--at-ms", "20", "--search-set", "halving.trial=20",
                    "--out", str(tmp_path / "out")])
    assert seen["cfg"].lr_warmup_epochs == 0.0
    with pytest.raises(SystemExit, match="stopped before searching"):  # the candidates warm up as the retrains
        bench.main(["--search-preset", "cpu", "--at-ms", "20", "--lr-warmup", "1", "--output-prior", "0.01",
                    "--out", str(tmp_path / "out")])
    assert seen["cfg"].lr_warmup_epochs == 1.0 and seen["cfg"].output_prior == 0.01
    assert not seen["cfg"].halving.select_threshold
    with pytest.raises(SystemExit, match="stopped before searching"):  # candidates ranked as the retrains score
        bench.main(["--search-preset", "cpu", "--at-ms", "20", "--select-threshold", "--out", str(tmp_path / "out")])
    assert seen["cfg"].halving.select_threshold


def test_the_budget_passes_the_lr_warmup_and_the_output_prior_to_every_retrain():
    from hnanas.pipeline.budget import Budget, budget_config

    model, data = {"genotype": "dnanet_res3", "space": "rep_nested"}, {"dataset": "synthetic"}
    assert budget_config(Budget(), model, data, 0).optim.warmup_epochs == 0.0  # the quick preset's: none
    assert budget_config(Budget(), model, data, 0).train.output_prior is None
    cfg = budget_config(Budget(warmup_epochs=1.5, output_prior=0.01), model, data, 0)
    assert (cfg.optim.warmup_epochs, cfg.train.output_prior) == (1.5, 0.01)


def test_rows_carry_the_chosen_threshold_only_for_retrains_that_chose_one():
    bench = load_bench("search_vs_random")
    chose = {"iou": 0.52, "threshold": 0.9, "threshold_from": "validation", "at_config_threshold": {"iou": 0.49}}
    assert bench.chosen_threshold(chose) == {"threshold": 0.9, "iou_at_config_threshold": 0.49}
    # scored at the config's threshold (the option off, or on without a validation subset): the row keeps its shape
    assert bench.chosen_threshold({"iou": 0.5, "threshold": 0.5, "threshold_from": "config"}) == {}
    assert bench.chosen_threshold({"iou": 0.5}) == {}  # metrics written before the option
