"""Measuring latency tables: context attribution, resume, sidecars, validation, bundles and import.

Timing values on a shared test machine are noisy, so these tests check structure and consistency (every entry
measured once, layouts recorded, resume skips work, the runner runs without torch), not speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
import torch

from hnanas.errors import HnanasError
from hnanas.latency import profiler
from hnanas.latency.bundle import import_results, safe_extract, write_bundle
from hnanas.latency.correction import fit_correction
from hnanas.latency.entries import CONTEXT_IN, ContextModel, layout_variants, space_entries
from hnanas.latency.profiler import ProfileSettings, measure_space, profile_space
from hnanas.latency.runner import classify_nodes, profile_entry, read_graph
from hnanas.latency.table import LatencyTable
from hnanas.latency.validate import validate_table
from hnanas.nas.genotype import named_genotypes
from hnanas.nas.space import load_space
from hnanas.runtime import export_onnx

FAST = ProfileSettings(warmup=1, runs=2, min_time_s=0.0, sessions=1)


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


def test_read_graph_matches_onnx(tmp_path):
    import onnx

    model = ContextModel(torch.nn.Conv2d(8, 16, 3, padding=1), [8], 16).eval()
    data = export_onnx(model, (torch.randn(1, CONTEXT_IN, 16, 16),), dynamo=False, output_name="ctx_post_out")
    ref = onnx.load_from_string(data)
    mine = read_graph(data)
    assert [(n["name"], n["op_type"], n["inputs"], n["outputs"]) for n in mine["nodes"]] == \
        [(n.name, n.op_type, list(n.input), list(n.output)) for n in ref.graph.node]
    assert mine["outputs"] == ["ctx_post_out"]


def test_context_attribution_charges_only_the_entry(tmp_path):
    """A 3x3 conv between context convs: the entry is one node; context nodes are not charged."""
    model = ContextModel(torch.nn.Conv2d(16, 16, 3, padding=1), [16], 16).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, (torch.randn(1, CONTEXT_IN, 32, 32),), path, dynamo=False, output_name="ctx_post_out")
    r = profile_entry(str(path), ["CPUExecutionProvider"], runs=3)
    assert r["nodes"] == 1 and r["median_ms"] > 0 and r["n"] == 3
    assert r["in_layout"] in ("nchw", "nchwc") and r["out_layout"] in ("nchw", "nchwc")


def test_layout_classification_on_a_hand_made_graph():
    g = {"inputs": ["x"], "outputs": ["y"], "nodes": [
        {"name": "ReorderInput", "op_type": "ReorderInput", "domain": "com.microsoft.nchwc", "inputs": ["x"],
         "outputs": ["a"]},
        {"name": "/ctx_pre/Conv", "op_type": "Conv", "domain": "com.microsoft.nchwc", "inputs": ["a"],
         "outputs": ["b"]},
        {"name": "r1", "op_type": "ReorderOutput", "domain": "com.microsoft.nchwc", "inputs": ["b"],
         "outputs": ["c"]},
        {"name": "/core/Concat", "op_type": "Concat", "domain": "", "inputs": ["c"], "outputs": ["d"]},
        {"name": "r2", "op_type": "ReorderInput", "domain": "com.microsoft.nchwc", "inputs": ["d"],
         "outputs": ["e"]},
        {"name": "ctx_post_out_nchwc", "op_type": "Conv", "domain": "com.microsoft.nchwc", "inputs": ["e"],
         "outputs": ["y"]},
    ]}
    info = classify_nodes(g)
    assert info["class"] == {"ReorderInput": "context", "/ctx_pre/Conv": "context", "r1": "reorder_in",
                             "/core/Concat": "entry", "r2": "reorder_out", "ctx_post_out_nchwc": "context"}
    assert (info["in_layout"], info["out_layout"]) == ("nchw", "nchw")


def test_a_conversion_named_after_a_context_tensor_is_still_the_entrys_boundary():
    """ORT names a ReorderOutput after the tensor it converts (here a ctx_pre conv's output)."""
    g = {"inputs": ["x"], "outputs": ["y"], "nodes": [
        {"name": "/ctx_pre/Conv_nchwc", "op_type": "Conv", "domain": "com.microsoft.nchwc", "inputs": ["x"],
         "outputs": ["a"]},
        {"name": "ReorderOutput", "op_type": "ReorderOutput", "domain": "com.microsoft.nchwc", "inputs": ["a"],
         "outputs": ["/ctx_pre/Conv_output_0"]},
        {"name": "/core/Abs", "op_type": "Abs", "domain": "", "inputs": ["/ctx_pre/Conv_output_0"], "outputs": ["b"]},
        {"name": "ReorderInput_token_6", "op_type": "ReorderInput", "domain": "com.microsoft.nchwc",
         "inputs": ["b"], "outputs": ["c"]},
        {"name": "ctx_post_out_nchwc", "op_type": "Conv", "domain": "com.microsoft.nchwc", "inputs": ["c"],
         "outputs": ["y"]},
    ]}
    cls = classify_nodes(g)["class"]
    assert cls["ReorderOutput"] == "reorder_in" and cls["ReorderInput_token_6"] == "reorder_out"
    assert cls["/core/Abs"] == "entry"


def test_reorder_entries_measure_both_directions(tiny, tmp_path):
    from hnanas.latency.entries import reorder_entry

    rows = profiler.measure_entry(reorder_entry("nchw", 32, 64, 64), tiny, FAST, tmp_path)
    assert {r["name"] for r in rows} == {"to_nchw", "to_nchwc"}
    assert all(r["median_ms"] > 0 for r in rows)


def test_measure_space_resumes_after_an_interruption(tiny, tmp_path, monkeypatch):
    entries = [e for e in space_entries(tiny) if e.kind in ("op", "head")][:6]
    out = tmp_path / "t.csv"
    real, calls = profiler.measure_entry, []

    def flaky(entry, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(entry.key)
        return real(entry, *args, **kwargs)

    monkeypatch.setattr(profiler, "measure_entry", flaky)
    with pytest.raises(KeyboardInterrupt):
        measure_space(tiny, out, FAST, entries=entries, checkpoint_s=0.0)
    assert out.with_suffix(".partial.csv").exists()
    monkeypatch.setattr(profiler, "measure_entry", lambda e, *a, **k: (calls.append(e.key), real(e, *a, **k))[1])
    frame = measure_space(tiny, out, FAST, entries=entries)
    assert len(frame) == 6 and len(calls) == 6 and len(set(calls)) == 6  # nothing measured twice
    with pytest.raises(HnanasError, match="other settings"):
        measure_space(tiny, out, ProfileSettings(threads=2, sessions=1), entries=entries)


def test_later_passes_retime_only_entries_that_matter_and_keep_the_fastest_session(tiny, tmp_path, monkeypatch):
    entries = [e for e in space_entries(tiny) if e.kind == "op"][:4]
    times = iter([2.0, 0.1, 3.0, 0.2, 1.5, 3.5])  # pass 1: all four; pass 2: the two >= 0.5 ms
    calls = []

    def fake(entry, *args):
        calls.append(entry.key)
        ms = next(times)
        return [{**entry.row(), "median_ms": ms, "p10_ms": ms, "p90_ms": ms, "n": 4, "in_layout": "nchwc",
                 "out_layout": "nchwc", "nodes": 1, "sessions": 1}]

    monkeypatch.setattr(profiler, "measure_entry", fake)
    frame = measure_space(tiny, tmp_path / "t.csv", ProfileSettings(sessions=2), entries=entries)
    assert calls == [e.key for e in entries] + [entries[0].key, entries[2].key]
    assert list(frame.median_ms) == [1.5, 0.1, 3.0, 0.2] and list(frame.sessions) == [2, 1, 2, 1]


def test_network_timing_repeats_only_until_the_two_fastest_sessions_agree(monkeypatch):
    """Rounds 1-2 time every network; later rounds only those whose two fastest sessions differ by > 3 %."""
    script = {"a": [10.0, 10.1], "b": [10.0, 14.0, 13.0, 10.2], "c": [9.0, 12.0, 11.0, 11.5, 11.4]}
    calls = []

    class Timing:
        def __init__(self, ms):
            self.median_ms = ms

    def fake_time(session, **kw):
        calls.append(session)
        return Timing(script[session].pop(0))

    monkeypatch.setattr(profiler, "make_session", lambda data, *a, **k: data)
    monkeypatch.setattr(profiler, "time_session", fake_time)
    best = profiler.measure_networks({n: n for n in script}, "cpu", 1, rounds=2, agree=0.03, max_rounds=5)
    assert best == {"a": 10.0, "b": 10.0, "c": 9.0}
    assert calls == ["a", "b", "c"] * 2 + ["b", "c", "b", "c", "c"]  # c never agrees: stops at max_rounds
    calls.clear()
    script.update(a=[1.0, 5.0, 2.0], b=[1.0, 1.0], c=[3.0, 3.0])
    assert profiler.measure_networks({n: n for n in script}, "cpu", 1, rounds=2) == {"a": 1.0, "b": 1.0, "c": 3.0}
    assert len(calls) == 6  # without ``agree``: exactly ``rounds`` rounds


def test_profile_space_writes_table_with_provenance_and_validates(tiny, tmp_path):
    out = tmp_path / "tiny_cpu_t1.csv"
    table = profile_space(tiny, out, FAST)
    assert not out.with_suffix(".partial.csv").exists()
    loaded = LatencyTable.load(out, space=tiny, device="cpu")
    base = space_entries(tiny)
    variants = layout_variants(loaded.frame.to_dict("records"))
    assert len(loaded.frame) == len(base) + len(variants)
    # a bilinear upsample that ran blocked runs in NCHW when its input arrives plain (ORT keeps its layout)
    bilinear = loaded.frame[loaded.frame.name == "bilinear@nchw"]
    assert len(bilinear) > 0 and set(bilinear.in_layout) == {"nchw"}
    meta = loaded.meta
    for key in ("device", "providers", "threads", "graph_optimization_level", "onnxruntime", "onnx", "opset",
                "cpu_model", "cpu_logical_cores", "memory_gb", "date", "hnanas", "space", "space_hash",
                "fixed_overhead_ms", "network_factor", "calibration_networks", "profile_seconds"):
        assert key in meta, key
    assert set(loaded.frame[loaded.frame.kind == "op"].in_layout) <= {"nchw", "nchwc", ""}
    g = named_genotypes(tiny)["dense_res3"]
    assert loaded.predict(g, tiny).total_ms == pytest.approx(table.predict(g, tiny).total_ms, rel=1e-3)
    report = validate_table(loaded, tiny, n=5)
    for key in ("mape", "max_abs_pct_err", "spearman", "n", "corrected"):
        assert key in report
    assert report["n"] == 5 and -1 <= report["spearman"] <= 1


def test_fit_correction_recovers_a_linear_relation():
    import numpy as np

    pred = np.array([1.0, 2.0, 5.0, 10.0, 20.0])
    a, b = fit_correction(pred, 1.1 * pred + 0.3)
    assert a == pytest.approx(1.1) and b == pytest.approx(0.3)


def test_safe_extract_refuses_zip_slip(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../evil.txt", "x")
    with pytest.raises(HnanasError, match="outside"):
        safe_extract(bad, tmp_path / "dest")
    assert not (tmp_path / "evil.txt").exists()


def test_bundle_runs_without_torch_and_imports(tiny, tmp_path):
    zip_path = write_bundle(tiny, tmp_path / "b.zip", FAST, n_validate=5)
    folder = safe_extract(zip_path, tmp_path / "b")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["space_hash"] == tiny.hash and (folder / "runner.py").exists()
    result = tmp_path / "results.csv"
    code = ("import sys, runpy\n"
            "for m in ('torch', 'hnanas', 'onnx'): sys.modules[m] = None  # prove the runner needs none of them\n"
            f"sys.argv = ['runner.py', {str(folder)!r}, '--out', {str(result)!r}]\n"
            f"runpy.run_path({str(folder / 'runner.py')!r}, run_name='__main__')\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    table, report = import_results(result, tiny, "cpu")
    assert len(table.frame) == len(space_entries(tiny))
    assert table.meta["device"] == "cpu" and report["n"] == 5
    assert table.predict(named_genotypes(tiny)["dense_res3"], tiny).total_ms > 0
    with pytest.raises(HnanasError, match="not 'gpu'"):
        import_results(result, tiny, "gpu")


def test_devices_that_do_not_run_here_point_to_bundle():
    from hnanas.runtime import check_device

    with pytest.raises(HnanasError, match="--bundle"):
        check_device("jetson")


def test_end_to_end_method_subtracts_identity_contexts():
    from hnanas.latency.e2e import entry_times

    rows = pd.DataFrame([
        {"kind": "identity", "name": "identity", "c_in": 8, "c_out": 8, "h": 32, "w": 32, "stride": 1, "parts": "", "median_ms": 0.2},
        {"kind": "identity", "name": "identity", "c_in": 16, "c_out": 16, "h": 32, "w": 32, "stride": 1, "parts": "", "median_ms": 0.4},
        {"kind": "op", "name": "res3", "c_in": 8, "c_out": 16, "h": 32, "w": 32, "stride": 1, "parts": "", "median_ms": 1.3},
        {"kind": "op", "name": "tiny", "c_in": 8, "c_out": 8, "h": 32, "w": 32, "stride": 1, "parts": "", "median_ms": 0.1},
    ])
    t = entry_times(rows)
    assert t[2] == pytest.approx(1.3 - (0.2 + 0.4) / 2)  # half of each boundary's identity context
    assert t[3] == 0.0  # never negative
    assert t[0] == 0.2  # identity rows pass through


def test_providers_without_node_profiles_time_entries_end_to_end(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(profiler, "per_node_profiles", lambda device: False)
    entries = [e for e in space_entries(tiny) if e.kind == "op"][:3]
    first = next(e for e in space_entries(tiny) if e.kind == "reorder")
    entries += [e for e in space_entries(tiny) if e.kind == "reorder" and (e.c_in, e.h, e.w) == (first.c_in, first.h, first.w)]
    frame = measure_space(tiny, tmp_path / "t.csv", FAST, entries=entries)
    assert "identity" not in set(frame.kind)  # helper rows are dropped from the table
    assert len(frame) == len(entries)
    assert (frame[frame.kind == "op"].median_ms >= 0).all()
    assert (frame[frame.kind == "reorder"].median_ms == 0).all()  # not modelled on these providers
