"""The instruments that judge a search: the latency-matched sampler and the statistics of search vs random."""

from __future__ import annotations

import math
import random

import pytest

from hnanas.errors import HnanasError
from hnanas.latency.matched import draw_genotype, latency_range, latency_only_ops, sample_at_latency
from hnanas.latency.table import LatencyTable, default_table_path
from hnanas.nas.genotype import make_genotype, named_genotypes, sample_genotype
from hnanas.nas.space import load_space
from hnanas.report.stats import bootstrap_gap, percentile_among, pooled_std, rank_agreement, versus_random


@pytest.fixture(scope="module", params=["rep_nested", "hna_nested"])
def shipped(request):
    space = load_space(request.param)
    return space, LatencyTable.load(default_table_path(space, "cpu", 1), space=space)


def test_matched_samples_lie_in_the_band_at_a_searched_latency(shipped):
    """At the latency of a typical searched network of each space (a 9-node ~10-20 ms one, and DNANet's
    topology with res3, ~50 ms), every sample is within +-5 % by the same table, distinct, and not the
    excluded genotype."""
    space, table = shipped
    searched = named_genotypes(space)["dnanet_res3"]
    for target in (table.predict(searched, space).total_ms, 12.0):
        found = sample_at_latency(space, table, target, 6, tol=0.05, seed=1, exclude=(searched,))
        assert len(found) == 6
        assert len({m.genotype.nodes for m in found}) == 6
        assert searched.nodes not in {m.genotype.nodes for m in found}
        for m in found:
            assert abs(m.predicted_ms - target) <= 0.05 * target
            assert m.predicted_ms == pytest.approx(table.predict(m.genotype, space).total_ms)
        assert [m.genotype.name for m in found] == [f"random_{i}" for i in range(6)]


def test_matched_sampler_is_deterministic_and_reaches_both_ends(shipped):
    space, table = shipped
    a = sample_at_latency(space, table, 30.0, 3, seed=7)
    b = sample_at_latency(space, table, 30.0, 3, seed=7)
    assert [m.genotype for m in a] == [m.genotype for m in b]
    lo, hi = latency_range(space, table, n=400, seed=0)
    # the fixed keep-probability 1/2 and uniform ops of sample_genotype do not reach the expensive end
    plain = [table.predict(sample_genotype(space, s), space).total_ms for s in range(400)]
    assert hi > 1.2 * max(plain)
    for target in (0.9 * hi, 4 * lo):  # near both ends (the very cheapest networks are few: a chain of 2 nodes)
        found = sample_at_latency(space, table, target, 2, seed=0)
        assert all(abs(m.predicted_ms - target) <= 0.05 * target for m in found)


def test_matched_sampler_says_when_a_target_is_out_of_reach(shipped):
    space, table = shipped
    with pytest.raises(HnanasError, match="found only 0 of 2"):
        sample_at_latency(space, table, 1e5, 2, max_draws=200)


def test_draws_are_valid_genotypes_of_varied_density(shipped):
    space, _ = shipped
    rng = random.Random(0)
    sizes = {len(draw_genotype(space, rng).nodes) for _ in range(200)}
    assert min(sizes) <= 3 and max(sizes) == len(space.nodes)


def test_pooled_std_and_percentile():
    assert pooled_std([[1.0, 3.0], [2.0, 4.0, 6.0]]) == pytest.approx(math.sqrt((2 + 2 * 4) / 3))
    assert pooled_std([[1.0], [2.0]]) is None
    assert percentile_among(5, [1, 2, 3, 4]) == 100.0
    assert percentile_among(0, [1, 2, 3, 4]) == 0.0
    assert percentile_among(2, [1, 2, 3, 4]) == 37.5  # one below, one tie (half)


def test_versus_random_on_known_values():
    r = versus_random([0.6, 0.62, 0.58], {"a": [0.4, 0.42], "b": [0.5, 0.5], "c": [0.7, 0.66]}, seed=0)
    assert r["searched_mean"] == pytest.approx(0.6)
    assert r["random_mean"] == pytest.approx((0.41 + 0.5 + 0.68) / 3)
    assert r["gap"] == pytest.approx(0.6 - 0.53)
    assert r["beats"] == 2 and r["n_random"] == 3
    assert r["percentile"] == pytest.approx(200 / 3)
    pooled = pooled_std([[0.6, 0.62, 0.58], [0.4, 0.42], [0.5, 0.5], [0.7, 0.66]])
    assert r["gap_in_pooled_std"] == pytest.approx(0.07 / pooled)
    low, high = r["gap_ci95"]
    assert low < r["gap"] < high


def test_bootstrap_interval_excludes_zero_only_for_a_clear_gap():
    clear = bootstrap_gap([0.8, 0.81, 0.79], [0.4, 0.42, 0.41, 0.39, 0.43, 0.38], seed=0)
    assert clear[0] > 0.3
    unclear = bootstrap_gap([0.5, 0.3, 0.7], [0.4, 0.6, 0.5, 0.45, 0.55, 0.35], seed=0)
    assert unclear[0] < 0 < unclear[1]
    assert bootstrap_gap([0.5], [0.4, 0.3]) is None


def test_rank_agreement_on_known_rankings():
    truth = {k: v for k, v in zip("abcde", [1, 2, 3, 4, 5])}
    same = rank_agreement({k: 10 * v for k, v in truth.items()}, truth)
    assert same["kendall_tau"] == pytest.approx(1.0) and same["spearman_rho"] == pytest.approx(1.0)
    rev = rank_agreement({k: -v for k, v in truth.items()}, truth)
    assert rev["kendall_tau"] == pytest.approx(-1.0)
    one_swap = rank_agreement({"a": 2, "b": 1, "c": 3, "d": 4, "e": 5}, truth)
    assert one_swap["kendall_tau"] == pytest.approx(0.8)  # 9 concordant, 1 discordant of 10 pairs
    partial = rank_agreement({"a": 1, "b": None, "c": float("nan"), "d": 4, "x": 9}, truth)
    assert partial["n"] == 2 and partial["kendall_tau"] is None


def test_latency_only_ops_cannot_be_improved_by_changing_one_node(shipped):
    """The ablation's ops (what stage 2's latency term alone drives to): no single-node change of op lowers the
    table's prediction, and it is below the same topology with every node on res3 or on a random op."""
    space, table = shipped
    topology = named_genotypes(space)["dnanet_res3"]
    best = latency_only_ops(space, table, topology)
    assert best.inputs == topology.inputs and best.name == "latency_only"
    ms = table.predict(best, space).total_ms
    assert ms < table.predict(topology, space).total_ms
    rng = random.Random(3)
    mixed = {node: rng.choice(space.ops) for node in topology.ops}
    assert ms <= table.predict(make_genotype(space, topology.inputs, mixed), space).total_ms
    for node in best.ops:
        for op in space.ops:
            other = make_genotype(space, topology.inputs, {**best.ops, node: op})
            assert table.predict(other, space).total_ms >= ms - 1e-9
