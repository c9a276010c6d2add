"""Latency tables: loading and provenance checks, predictions, and differentiable expected latency.

These tests use a synthetic table (costs from a formula, so they need no timing); measuring is tested in
test_latency_profile.py.
"""

from __future__ import annotations

import pytest
import torch

from hnanas.errors import HnanasError
from _helpers import synthetic_table

from hnanas.latency.expected import EdgeLatencyModel, OpLatencyModel
from hnanas.latency.table import LatencyTable
from hnanas.nas.genotype import make_genotype, named_genotypes, sample_genotype
from hnanas.nas.space import load_space
from hnanas.search.supernet import OpSupernet, TopologySupernet


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


@pytest.fixture(scope="module")
def table(tiny):
    return synthetic_table(tiny)


def test_save_load_round_trip_and_provenance_checks(tiny, table, tmp_path):
    path = table.save(tmp_path / "t.csv")
    loaded = LatencyTable.load(path, space=tiny, device="cpu")
    g = sample_genotype(tiny, 2)
    assert loaded.predict(g, tiny).total_ms == pytest.approx(table.predict(g, tiny).total_ms, rel=1e-4)
    with pytest.raises(HnanasError, match="measured for space"):
        LatencyTable.load(path, space=load_space("hna_nested"))
    with pytest.raises(HnanasError, match="measured on device 'cpu', not 'gpu'"):
        LatencyTable.load(path, device="gpu")
    with pytest.raises(HnanasError, match="no such latency table"):
        LatencyTable.load(tmp_path / "missing.csv")


def test_prediction_sums_its_parts_and_applies_correction(tiny, table):
    g = named_genotypes(tiny)["dense_res3"]
    p = table.predict(g, tiny)
    assert p.reorder_ms > 0  # the hashed layouts disagree somewhere
    parts = sum(p.nodes_ms.values()) + p.resample_ms + p.reorder_ms + p.head_ms
    assert p.raw_ms == pytest.approx(table.network_factor * parts + p.overhead_ms)
    assert table.entries_sum(g, tiny) == pytest.approx(parts)
    assert p.total_ms == p.raw_ms and not p.corrected
    corrected = LatencyTable(table.frame, {**table.meta, "correction": {"a": 1.1, "b": 0.5}})
    q = corrected.predict(g, tiny)
    assert q.corrected and q.total_ms == pytest.approx(1.1 * p.raw_ms + 0.5)
    # a denser topology costs more
    assert p.total_ms > table.predict(named_genotypes(tiny)["chain_res3"], tiny).total_ms


def test_missing_entry_is_a_clear_error(tiny, table):
    small = LatencyTable(table.frame[table.frame.kind != "concat"], table.meta)
    with pytest.raises(HnanasError, match="no entry concat:"):
        small.predict(named_genotypes(tiny)["dense_res3"], tiny)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("op", ["res3", "mb3e2"])
def test_edge_expectation_with_hard_probabilities_equals_prediction(tiny, table, seed, op):
    g = sample_genotype(tiny, seed, ops=[op])
    model = EdgeLatencyModel(table, tiny, op=op)
    probs = {n.id: torch.tensor([1.0 if (n.id in g.inputs and c in g.inputs[n.id]) else 0.0
                                 for c in n.candidates]) for n in tiny.nodes}
    assert float(model(probs)) == pytest.approx(table.predict(g, tiny).total_ms, rel=1e-5)


def test_edge_expectation_is_differentiable_and_monotone(tiny, table):
    net = TopologySupernet(tiny)
    model = EdgeLatencyModel(table, tiny)
    lat = model(net.edge_probs())
    lat.backward()
    grads = [p.grad for p in net.arch_parameters()]
    assert all(g is not None for g in grads)
    # keeping more edges never gets cheaper here: every edge gradient is >= 0 and some are > 0
    assert all((g >= -1e-9).all() for g in grads) and any((g > 0).any() for g in grads)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.fill_(4.0)
    dense = model(net.edge_probs()).item()
    with torch.no_grad():
        for p in net.arch_parameters():
            p.fill_(-4.0)
    assert model(net.edge_probs()).item() < dense


@pytest.mark.parametrize("topo_name, shift", [("dense_res3", 0), ("dense_res3", 1), ("chain_res3", 2),
                                              ("dnanet_res3", 1)])
def test_op_expectation_with_one_hot_equals_prediction(tiny, table, topo_name, shift):
    topo = named_genotypes(tiny)[topo_name]
    net = OpSupernet(tiny, topo)
    model = OpLatencyModel(table, tiny, topo, net.node_ops)
    choice = {n: ops[(i + shift) % len(ops)] for i, (n, ops) in enumerate(net.node_ops.items())}
    one_hot = {n: torch.tensor([1.0 if o == choice[n] else 0.0 for o in ops]) for n, ops in net.node_ops.items()}
    g = make_genotype(tiny, topo.inputs, choice)
    assert model(one_hot).item() == pytest.approx(table.predict(g, tiny).total_ms, rel=1e-5)


def test_op_expectation_has_gradients(tiny, table):
    topo = named_genotypes(tiny)["dense_res3"]
    net = OpSupernet(tiny, topo)
    model = OpLatencyModel(table, tiny, topo, net.node_ops)
    lat = model(net.op_probs())
    lat.backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in net.arch_parameters())


def test_layout_following_entries_take_their_inputs_layout(tiny, table):
    """A resample/concat measured blocked runs as its @nchw row when an input arrives plain (ORT blocks it only
    when all inputs are blocked); an entry whose @nchw row still needs blocked input forces its layout."""
    from hnanas.latency.entries import KEY_COLUMNS, Entry, nchw_variant

    frame = table.frame.copy()
    e = Entry(**{c: frame[frame.kind == "concat"].iloc[0][c] for c in KEY_COLUMNS})
    e = Entry(**{**e.row(), "name": "concat"})
    key = lambda x: (frame.kind == x.kind) & (frame.name == x.name) & (frame.parts == x.parts) & (frame.h == x.h)
    frame.loc[key(e), ["in_layout", "out_layout"]] = ["nchwc", "nchwc"]
    frame.loc[key(nchw_variant(e)), ["in_layout", "out_layout"]] = ["nchw", "nchw"]
    t = LatencyTable(frame, table.meta)
    assert t.follow(e, ["nchwc", "nchwc"]) == e
    assert t.follow(e, ["nchwc", "nchw"]) == nchw_variant(e)
    frame.loc[key(nchw_variant(e)), "in_layout"] = "nchwc"  # it forces blocked input: conversions, base row
    assert LatencyTable(frame, table.meta).follow(e, ["nchw", "nchw"]) == e
    old = LatencyTable(frame[~key(nchw_variant(e))], table.meta)  # a table measured before variants existed
    with pytest.raises(HnanasError, match="re-profile"):
        old.follow(e, ["nchw", "nchwc"])


def test_validation_without_correction_drops_a_stored_one(tiny, table, monkeypatch):
    """``validate --no-correction``: the sidecar's summary and the table's predictions agree (no correction)."""
    from hnanas.latency import validate

    monkeypatch.setattr(validate, "export_network", lambda space, g: g.name)
    monkeypatch.setattr(validate, "measure_networks",
                        lambda models, *a, **k: {name: 2.0 + 0.1 * i for i, name in enumerate(models)})
    t = LatencyTable(table.frame, {**table.meta, "correction": {"a": 1.1, "b": 0.5}})
    report = validate.validate_table(t, tiny, n=6, allow_correction=False)
    assert "correction" not in t.meta and not report["corrected"] and not t.meta["validation"]["corrected"]
    g = sample_genotype(tiny, 0)
    assert t.predict(g, tiny).total_ms == t.predict(g, tiny).raw_ms
