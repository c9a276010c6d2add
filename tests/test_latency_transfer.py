"""This machine's latency: the quick transfer of a table (``hnanas profile quick``), the preference for tables
measured on this CPU, the once-per-table warning about another CPU's table, and ``validate`` leaving another
CPU's table untouched. Timing is replaced by a synthetic "machine" (a table whose groups cost different
multiples of the base's), so the tests are exact and fast; real measurements are in docs/results.md."""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
import pytest
from _helpers import synthetic_table
from scipy.stats import spearmanr

from hnanas.cli import main
from hnanas.latency import machine, table as latency_table, transfer
from hnanas.latency.table import LatencyTable, default_table_path
from hnanas.nas.genotype import sample_genotype
from hnanas.nas.space import load_space

# the other machine: each kind of entry a different multiple of the base table's cost
TRUE_SCALE = {"op:res3": 3.1, "op:repconv": 2.2, "op:mb3e2": 4.0, "reorder": 1.4, "concat": 2.5, "resample": 1.2,
              "head": 2.0}


def group_scale(group: str) -> float:
    return next(v for k, v in TRUE_SCALE.items() if group.startswith(k))


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


@pytest.fixture(scope="module")
def base(tiny):
    return synthetic_table(tiny)


@pytest.fixture(scope="module")
def other_machine(base):
    frame = base.frame.copy()
    frame["median_ms"] = frame["median_ms"] * [group_scale(g) for g in transfer.row_groups(base)]
    return LatencyTable(frame, {**base.meta, "network_factor": 1.0, "fixed_overhead_ms": 0.9})


def timed_on(machine_table, space, noise=0.0):
    def measure(graphs):
        return {n: machine_table.predict(g, space).total_ms * (1 + noise * np.sin(3 * i))
                for i, (n, g) in enumerate(graphs.items())}
    return measure


@pytest.mark.parametrize("noise", [0.0, 0.03])
def test_transfer_prices_the_other_machine(tiny, base, other_machine, noise):
    """Re-fitted on the reference networks of a machine whose op kinds scale differently, the transferred table
    predicts unseen random networks there far better than the base table does, and ranks them as it does."""
    quick = transfer.transfer_table(base, tiny, transfer.TransferSettings(), timed_on(other_machine, tiny, noise))
    nets = [sample_genotype(tiny, 500 + k) for k in range(12)]
    truth = np.array([other_machine.predict(g, tiny).total_ms for g in nets])
    before = np.array([base.predict(g, tiny).total_ms for g in nets])
    after = np.array([quick.predict(g, tiny).total_ms for g in nets])
    mape = lambda p: float(np.mean(np.abs(p / truth - 1)) * 100)  # noqa: E731
    assert mape(before) > 40
    assert mape(after) < (1.0 if noise == 0 else 6.0)
    assert spearmanr(after, truth)[0] > 0.95
    meta = quick.meta
    assert meta["method"] == "transfer" and meta["cpu_identity"] == machine.this_cpu()
    assert "correction" not in meta and meta["transfer"]["references"]
    if noise == 0:  # the heavy groups' scales are recovered
        for g in ("op:res3", "op:repconv", "op:mb3e2"):
            assert meta["transfer"]["scales"][g] == pytest.approx(TRUE_SCALE[g], rel=0.05)


def test_references_are_mixed_networks_that_cover_every_op(tiny):
    settings = transfer.TransferSettings()
    nets = transfer.reference_networks(tiny, settings)
    mixed = [g for n, g in nets.items() if n.startswith("mixed_")]
    assert len(mixed) == settings.n_random
    assert not any(n.startswith("only_") for n in nets)  # one-op networks over-scale: not references
    assert "smallest" in nets and len(nets) > settings.n_random + 1  # and the named ones
    assert {o for g in mixed for _, _, o in g.nodes} == set(tiny.ops)  # every op's scale is identifiable
    assert len({g.nodes for g in mixed}) == len(mixed)


def test_ridge_pulls_scales_together():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 2.0, size=(12, 4))
    meas = x @ np.array([1.0, 2.0, 3.0, 4.0]) + 0.2
    free, _ = transfer.fit_scales(x, meas, 0.0)
    tied, _ = transfer.fit_scales(x, meas, 1e4)
    assert free == pytest.approx([1.0, 2.0, 3.0, 4.0], rel=1e-3)
    assert np.ptp(tied) < 0.05 * np.ptp(free)


def write(table, path, **meta):
    table.meta.update(meta)
    return table.save(path)


def test_default_table_prefers_one_measured_on_this_cpu(tiny, base, tmp_path, monkeypatch):
    folder = tmp_path / "tables"
    monkeypatch.setattr(latency_table, "table_dirs", lambda: [folder])
    monkeypatch.setenv("HNANAS_CACHE_DIR", str(tmp_path / "cache"))
    here = {"cpu_identity": machine.this_cpu(), "onnxruntime": machine.ort_version()}
    shipped = write(LatencyTable(base.frame, dict(base.meta)), folder / "tiny_cpu_t1.csv",
                    cpu_identity="another CPU", onnxruntime=machine.ort_version())
    assert default_table_path(tiny, "cpu", 1) == shipped
    quick_path = machine.machine_table_path("tiny", "cpu", 1)
    write(LatencyTable(base.frame, dict(base.meta)), quick_path, **here)
    assert default_table_path(tiny, "cpu", 1) == quick_path  # this machine's transfer beats another CPU's table
    assert default_table_path(tiny, "gpu", 1) == folder / "tiny_gpu_t1.csv"  # other devices: no machine tables
    write(LatencyTable(base.frame, dict(base.meta)), shipped, **here)
    assert default_table_path(tiny, "cpu", 1) == shipped  # a full profile here beats the transfer
    write(LatencyTable(base.frame, dict(base.meta)), shipped, cpu_identity=machine.this_cpu(), onnxruntime="0.1")
    assert default_table_path(tiny, "cpu", 1) == quick_path  # ... measured with this onnxruntime


def test_a_table_from_another_cpu_is_named_once(tiny, base, tmp_path, caplog):
    path = write(LatencyTable(base.frame, dict(base.meta)), tmp_path / "t.csv", cpu_model="Some CPU")
    with caplog.at_level(logging.WARNING):
        LatencyTable.load(path, space=tiny)
        LatencyTable.load(path, space=tiny)
    said = [r.getMessage() for r in caplog.records if "profile quick" in r.getMessage()]
    assert len(said) == 1 and "Some CPU (CPU details not recorded)" in said[0] and machine.this_cpu() in said[0]
    caplog.clear()
    mine = write(LatencyTable(base.frame, dict(base.meta)), tmp_path / "mine.csv", cpu_identity=machine.this_cpu())
    with caplog.at_level(logging.WARNING):
        LatencyTable.load(mine, space=tiny)
    assert not [r for r in caplog.records if "profile quick" in r.getMessage()]


def test_a_table_from_another_onnxruntime_is_named_once(tiny, base, tmp_path, caplog):
    path = write(LatencyTable(base.frame, dict(base.meta)), tmp_path / "t.csv", cpu_identity=machine.this_cpu(),
                 onnxruntime="0.1")
    with caplog.at_level(logging.WARNING):
        LatencyTable.load(path, space=tiny)
        LatencyTable.load(path, space=tiny)
    said = [r.getMessage() for r in caplog.records if "onnxruntime 0.1" in r.getMessage()]
    assert len(said) == 1 and f"this is {machine.ort_version()}" in said[0]
    assert not [r for r in caplog.records if "profile quick" in r.getMessage()]  # this CPU's own table


@pytest.fixture
def fake_timing(monkeypatch, tiny, other_machine):
    from hnanas.latency import validate

    monkeypatch.setattr(validate, "export_network", lambda space, g: g)
    monkeypatch.setattr(validate, "measure_networks",
                        lambda models, *a, **k: {n: other_machine.predict(g, tiny).total_ms for n, g in models.items()})
    monkeypatch.setattr(transfer, "measure_references", lambda space, settings: timed_on(other_machine, tiny))


def test_validate_leaves_another_cpus_table_as_it_is(base, tmp_path, fake_timing, capsys):
    path = write(LatencyTable(base.frame, dict(base.meta)), tmp_path / "t.csv", cpu_identity="another CPU",
                 space_source="tiny")
    before = path.with_suffix(".json").read_bytes()
    assert main(["profile", "validate", "--table", str(path), "--n", "6"]) == 0
    assert "left as it is" in capsys.readouterr().out
    assert path.with_suffix(".json").read_bytes() == before
    write(LatencyTable(base.frame, dict(base.meta)), path, cpu_identity=machine.this_cpu(),
          onnxruntime=machine.ort_version())
    assert main(["profile", "validate", "--table", str(path), "--n", "6"]) == 0
    assert "validation" in LatencyTable.load(path).meta  # measured here: the check is stored


def test_transfer_status_says_when_there_is_nothing_to_do(base, tmp_path):
    here = {"cpu_identity": machine.this_cpu(), "onnxruntime": machine.ort_version()}
    settings = transfer.TransferSettings()
    src = write(LatencyTable(base.frame, dict(base.meta)), tmp_path / "b.csv", cpu_identity="another CPU")
    out = tmp_path / "out.csv"
    assert transfer.transfer_status(src, out, settings) == (True, "")  # nothing written yet
    done = {"base_table": str(src), "settings": asdict(settings)}
    write(LatencyTable(base.frame, dict(base.meta)), out, transfer=done, **here)
    needed, why = transfer.transfer_status(src, out, settings)
    assert not needed and "already priced" in why
    assert transfer.transfer_status(src, out, transfer.TransferSettings(n_random=6))[0]  # other settings: redone
    other = write(LatencyTable(base.frame, dict(base.meta)), tmp_path / "c.csv", cpu_identity="another CPU")
    assert transfer.transfer_status(other, out, settings) == (True, "")  # made from another base table
    write(LatencyTable(base.frame, dict(base.meta)), src, **here)  # the base table was measured here
    needed, why = transfer.transfer_status(src, tmp_path / "none.csv", settings)
    assert not needed and "measured on this machine" in why


def test_profile_quick_writes_this_machines_table_once(tiny, base, tmp_path, fake_timing, capsys, monkeypatch):
    monkeypatch.setenv("HNANAS_CACHE_DIR", str(tmp_path / "cache"))
    src = write(LatencyTable(base.frame, dict(base.meta)), tmp_path / "tiny_cpu_t1.csv", cpu_identity="another CPU",
                onnxruntime=machine.ort_version())
    assert main(["profile", "quick", "--space", "tiny", "--table", str(src)]) == 0
    out = machine.machine_table_path("tiny", "cpu", 1)
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert LatencyTable.load(out, space=tiny).meta["transfer"]["base_table"] == str(src)
    stamp = out.stat().st_mtime_ns
    assert main(["profile", "quick", "--space", "tiny", "--table", str(src)]) == 0
    assert "already priced" in capsys.readouterr().out and out.stat().st_mtime_ns == stamp
    old = LatencyTable.load(out, space=tiny)  # a transfer by an earlier hnanas (other references) is redone
    old.meta["transfer"]["settings"] = {**old.meta["transfer"]["settings"], "n_random": 6}
    old.save(out)
    assert main(["profile", "quick", "--space", "tiny", "--table", str(src)]) == 0
    assert "other settings" in capsys.readouterr().out
    assert LatencyTable.load(out, space=tiny).meta["transfer"]["settings"]["n_random"] == 20
    assert main(["profile", "quick", "--space", "tiny", "--table", str(src), "--latency-device", "gpu"]) == 2
    assert "prices this machine's CPU" in capsys.readouterr().err


def test_quick_profile_bench_reports_both_tables(tiny, base, other_machine, tmp_path, fake_timing, monkeypatch):
    from _helpers import load_bench

    bench = load_bench("quick_profile")
    monkeypatch.setattr(bench, "export_network", lambda space, g: g)
    monkeypatch.setattr(bench, "export_onnx", lambda model, example, dynamo: model)
    monkeypatch.setattr(bench, "derive", lambda space, g, deploy: type("M", (), {"eval": lambda self: g})())
    monkeypatch.setattr(bench, "measure_networks", lambda models, *a, **k: {
        n: other_machine.predict(g, tiny).total_ms * (1.1 if n.endswith("torchscript") else 1.0)
        for n, g in models.items()})
    src = write(LatencyTable(base.frame, dict(base.meta)), tmp_path / "tiny_cpu_t1.csv", space_source="tiny")
    out = tmp_path / "r.json"
    assert bench.main(["--space", "tiny", "--table", str(src), "--n", "8", "--json", str(out)]) == 0
    from hnanas.fileio import read_json

    r = read_json(out)
    assert r["stats"]["shipped"]["mape"] > 40 and r["stats"]["quick"]["mape"] < 1.0
    assert r["torchscript_over_deploy"] == pytest.approx([1.1] * 8)
