"""hnanas report on hand-made run folders: Pareto data, run discovery and classification, the runs table with
and without a retrain, the architecture layout, the written report, and clear errors."""

from __future__ import annotations

import csv
import io
import os
import shutil

import pytest

from _helpers import synthetic_table
from hnanas.cli import main
from hnanas.errors import HnanasError
from hnanas.nas.space import load_space
from hnanas.report.architecture import HEAD, architecture_layout, architecture_of_run
from hnanas.report.build import write_report
from hnanas.report.data import ParetoPoint, pareto_front, pareto_points, run_latencies, runs_table
from hnanas.report.runs import expand_run_paths, find_runs, load_run
from report_fixtures import make_runs, small_genotype


@pytest.fixture
def runs(tmp_path):
    return make_runs(tmp_path / "runs")


def point(name, cost, gain, baseline=False):
    return ParetoPoint(name, baseline, cost, None, gain, None, None, None)


def test_pareto_front_of_known_points():
    pts = [point("a", 1.0, 0.5), point("b", 2.0, 0.7), point("c", 3.0, 0.6), point("d", 2.0, 0.4),
           point("e", 4.0, 0.9), point("a2", 1.0, 0.5), point("f", 0.5, 0.1), point("g", 4.0, 0.85)]
    assert [p.name for p in pareto_front(pts)] == ["f", "a", "a2", "b", "e"]  # equal points both stay
    assert pareto_front([]) == []
    # other keys, and points without a value take no part
    assert [p.name for p in pareto_front(pts, cost=lambda p: -p.iou, gain=lambda p: p.measured_ms)] == ["e"]
    assert [p.name for p in pareto_front(pts + [point("none", 0.1, None)])] == ["f", "a", "a2", "b", "e"]


def test_runs_are_found_and_classified(runs, tmp_path, monkeypatch):
    found = {r.name: r for r in find_runs([tmp_path / "runs"])}  # a folder of runs stands for them
    assert set(found) == {"searched", "search_only", "dnanet", "dn_res3"}
    assert (found["searched"].kind, found["searched"].status) == ("searched", "retrained")
    assert (found["search_only"].kind, found["search_only"].status) == ("searched", "no retrain")
    assert found["dnanet"].baseline and found["dnanet"].status == "retrained"
    assert found["dn_res3"].baseline and found["dn_res3"].retrain_path == runs["dn_res3"] / "retrain"
    assert found["dn_res3"].genotype_name.startswith("dnanet_res3 (tiny): 6 nodes, res3")
    # a retrain folder named directly finds its search: the folder around it, or the one its genotype path names
    # (relative to the directory the retrain ran in, here tmp_path: tried against the folder's ancestors)
    assert load_run(runs["searched"] / "retrain").search_path == runs["searched"]
    elsewhere = tmp_path / "runs" / "long_retrain"
    shutil.copytree(runs["searched"] / "retrain", elsewhere)
    cfg = (elsewhere / "config.yaml").read_text().replace(str(tmp_path) + "/", "")
    (elsewhere / "config.yaml").write_text(cfg)
    assert "genotype: runs/searched/genotype.json" in cfg
    monkeypatch.chdir(runs["dnanet"])
    direct = load_run(elsewhere)
    assert not direct.baseline and direct.search_path.resolve() == runs["searched"].resolve()
    assert direct.info["latency_weight"] == 0.1
    (runs["searched"] / "genotype.json").write_text((runs["search_only"] / "genotype.json").read_text())
    mismatch = load_run(elsewhere)  # that search's genotype is not the one trained: not its retrain
    assert mismatch.search_path is None and mismatch.info == {} and not mismatch.baseline  # a genotype file


def test_globs_and_bad_paths(runs, tmp_path):
    assert [p.name for p in expand_run_paths([str(tmp_path / "runs" / "s*")])] == ["search_only", "searched"]
    assert expand_run_paths([runs["searched"], str(runs["searched"])]) == [runs["searched"]]  # no repeats
    (tmp_path / "empty").mkdir()
    with pytest.raises(HnanasError, match="not a run folder"):
        expand_run_paths([tmp_path / "empty"])
    with pytest.raises(HnanasError, match="no such run folder"):
        expand_run_paths([tmp_path / "missing"])
    with pytest.raises(HnanasError, match="matches no file"):
        expand_run_paths([str(tmp_path / "nothing_*")])


def test_latencies_use_the_search_prediction_only_on_the_same_device_and_threads(runs):
    searched = load_run(runs["searched"])
    lat = run_latencies(searched)["cpu"]
    assert lat.measured_ms == 2.0 and lat.predicted_ms == pytest.approx(searched.info["predicted_latency_ms"])
    assert lat.predicted_from == "search"
    (runs["searched"] / "retrain" / "latency.json").write_text(
        '{"cpu": {"measured_ms": 2.0, "predicted_ms": null, "threads": 2}}')
    assert run_latencies(load_run(runs["searched"]))["cpu"].predicted_ms is None  # other thread count: no pairing
    baseline = run_latencies(load_run(runs["dnanet"]))["cpu"]
    assert (baseline.measured_ms, baseline.predicted_ms) == (9.0, None)


def test_runs_table_with_and_without_a_retrain(runs):
    rows = {r["run"]: r for r in runs_table(find_runs(list(runs.values())), ["cpu"])}
    s, only, dn = rows["searched"], rows["search_only"], rows["dnanet"]
    assert (s["iou"], s["pd"], s["fa"], s["cpu_measured_ms"], s["latency_weight"]) == (0.6, 0.9, 2e-5, 2.0, 0.1)
    assert s["retrain_val_iou"] == pytest.approx(0.61) and s["search_val_iou"] == 0.25
    assert (s["train_epochs"], s["train_minutes"], s["dataset"], s["split"]) == (40, 2.5, "syn", "default")
    assert only["status"] == "no retrain" and only["latency_weight"] == 1.0
    assert all(only[k] is None for k in ("iou", "niou", "pd", "fa", "cpu_measured_ms", "retrain_val_iou"))
    assert only["cpu_predicted_ms"] > 0 and only["params"] == 45_000 and only["train_epochs"] is None
    assert dn["kind"] == "baseline" and dn["latency_weight"] is None and dn["cpu_predicted_ms"] is None
    points = {p.name: p for p in pareto_points(find_runs(list(runs.values())), "cpu")}
    assert set(points) == {"searched", "dnanet", "dn_res3"} and points["dnanet"].baseline


def test_architecture_layout_of_a_known_genotype():
    space = load_space("tiny")
    g = small_genotype(space)
    pred = synthetic_table(space).predict(g, space)
    layout = architecture_layout(space, g, pred.to_dict())
    assert len(layout.nodes) == 6 and not layout.node("0_1").kept and layout.node("1_1").op == "res3"
    assert (layout.node("1_1").x, layout.node("1_1").y) == (1.0, -1.0) and layout.input_xy == (-1.0, 0.0)
    edges = {(e.src, e.dst): e.resample for e in layout.edges}
    assert edges == {("input", "0_0"): "same", ("0_0", "1_0"): "down", ("1_0", "2_0"): "down",
                     ("2_0", "1_1"): "up", ("1_1", "0_2"): "up", ("0_0", "0_2"): "same", ("0_2", HEAD): "same"}
    for n in layout.nodes:
        if n.kept:
            assert n.ms == pred.nodes_ms[n.id] and n.share == pytest.approx(n.ms / pred.total_ms)
    assert sum(n.share for n in layout.nodes if n.kept) < 1.0  # resamples, reorders, head and overhead remain
    bare = architecture_layout(space, g)  # no prediction: no shares
    assert all(n.share is None for n in bare.nodes) and bare.total_ms is None


def test_architecture_of_runs(runs):
    searched = architecture_of_run(load_run(runs["searched"]), ["cpu"])
    assert "from the search" in searched.source and searched.total_ms > 0
    assert architecture_of_run(load_run(runs["dnanet"]), ["cpu"]) is None  # not a nested-space network
    named = architecture_of_run(load_run(runs["dn_res3"]), ["cpu"])  # no tiny table under latency_tables/
    assert named is not None and named.total_ms is None and "no latency table" in named.source


def test_report_writes_index_table_and_figures(runs, tmp_path):
    out = tmp_path / "report"
    result = write_report([str(tmp_path / "runs" / "*")], out=out)
    index = (out / "index.md").read_text()
    assert result.runs == 4 and result.index == out / "index.md"
    assert "4 run(s): 2 searched, 2 baseline(s); 3 retrained" in index
    assert "*no retrain*: search val IoU 25.00 %" in index  # marked, with search columns only
    assert "Pareto front (test IoU vs measured latency): searched (2.00 ms, 60.00 %) → dn_res3" not in index
    assert ("Pareto front (test IoU vs measured latency): searched (2.00 ms, 60.00 %) → dnanet (9.00 ms, 70.00 %)"
            in index)
    assert "Not plotted (no retrain, or not measured on cpu): search_only." in index
    assert "](figures/pareto_cpu.png)" in index and "](figures/arch_searched.png)" in index
    assert "arch_dnanet.png" not in index
    for png in ("pareto_cpu.png", "arch_searched.png", "arch_search_only.png", "arch_dn_res3.png"):
        assert (out / "figures" / png).read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(io.StringIO((out / "runs.csv").read_text())))
    by_name = {r["run"]: r for r in rows}
    assert float(by_name["searched"]["iou"]) == 0.6 and by_name["search_only"]["iou"] == ""
    table = (out / "runs.md").read_text()
    assert "| [searched](../runs/searched) | searched | retrained |" in table
    assert "| 60.00 | 55.00 | 90.00 | 20.00 |" in table
    for link in ("../runs/searched", "figures/pareto_cpu.png"):
        assert os.path.exists(out / link)


def test_single_run_report_goes_into_the_run_and_cli_errors(runs, tmp_path, capsys):
    assert main(["report", str(runs["searched"])]) == 0
    assert (runs["searched"] / "index.md").is_file() and (runs["searched"] / "figures" / "pareto_cpu.png").is_file()
    assert "report of 1 run(s)" in capsys.readouterr().out
    (tmp_path / "notarun").mkdir()
    assert main(["report", str(tmp_path / "notarun")]) == 2
    assert "not a run folder" in capsys.readouterr().err
