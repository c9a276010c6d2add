"""Supernets: parameter split, gates, sampled paths and derivation."""

from __future__ import annotations

import pytest
import torch

from hnanas.genotype import named_genotypes
from hnanas.space import load_space
from hnanas.supernet import OpSupernet, TopologySupernet


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


def _split_is_partition(net):
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert arch and weights and not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}


def test_topology_supernet_parameters_and_gradients(tiny):
    net = TopologySupernet(tiny)
    _split_is_partition(net)
    assert set(net.arch) == {n.id for n in tiny.searchable_nodes}
    gates = net.sample_gates(temperature=1.0, generator=torch.Generator().manual_seed(0))
    net(torch.randn(2, 1, 32, 32), gates).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.arch_parameters())


def test_hard_gates_are_binary_with_straight_through_gradients(tiny):
    net = TopologySupernet(tiny)
    gates = net.sample_gates(0.5, torch.Generator().manual_seed(1), hard=True)
    for g in gates.values():
        assert set(g.detach().unique().tolist()) <= {0.0, 1.0}
    sum(g.sum() for g in gates.values()).backward()
    assert all(p.grad is not None for p in net.arch_parameters())


def test_derive_topology_follows_edge_probabilities(tiny):
    net = TopologySupernet(tiny)
    with torch.no_grad():
        for node, beta in net.arch.items():
            beta.fill_(-5.0)  # drop everything ...
        net.arch["0_2"][0] = 5.0  # ... but 0_2 <- 0_1 and 0_1 <- 1_0, 2_0
        net.arch["0_1"][1] = 5.0
        net.arch["0_1"][2] = 4.0
    g = net.derive_topology()
    assert g.inputs["0_2"] == ("0_1",) and g.inputs["0_1"] == ("1_0", "2_0")
    assert "1_1" not in g.inputs  # unreachable nodes are pruned


def test_derive_topology_fills_a_latency_budget_by_edge_probability(tiny):
    from _helpers import synthetic_table
    from hnanas.latency.expected import EdgeLatencyModel
    net = TopologySupernet(tiny)
    model = EdgeLatencyModel(synthetic_table(tiny), tiny)
    with torch.no_grad():  # every edge just below 1/2: the threshold keeps one input per node
        for beta in net.arch.values():
            beta.fill_(-0.01)
    plain = net.derive_topology()
    gates = lambda g: {n.id: torch.tensor([1.0 if c in g.inputs.get(n.id, ()) else 0.0 for c in n.candidates])  # noqa: E731
                       for n in tiny.nodes}
    ms = lambda g: float(model(gates(g)))  # noqa: E731
    dense = named_genotypes(tiny)["dense_res3"]
    assert ms(plain) < ms(dense)
    assert net.derive_topology(budget=model, budget_ms=ms(plain) * 0.5).inputs == plain.inputs  # over budget: as is
    assert net.derive_topology(budget=model, budget_ms=ms(dense) + 1).inputs == dense.inputs  # room for all
    middle = (ms(plain) + ms(dense)) / 2
    filled = net.derive_topology(budget=model, budget_ms=middle)
    assert ms(plain) < ms(filled) <= middle
    assert all(set(plain.inputs[n]) <= set(filled.inputs.get(n, ())) for n in plain.inputs if n in filled.inputs)


def test_op_supernet_two_paths_reach_alpha_and_one_path_does_not(tiny):
    topo = named_genotypes(tiny)["dense_res3"]
    net = OpSupernet(tiny, topo)
    _split_is_partition(net)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 32, 32)
    net(x, net.sample_paths(2, gen), gen).pow(2).mean().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in net.arch_parameters())
    net.zero_grad(set_to_none=True)
    net(x, net.sample_paths(1, gen, uniform=True)).pow(2).mean().backward()
    assert all(a.grad is None for a in net.arch_parameters())  # weight steps do not touch alpha


def test_op_supernet_mixture_and_derive(tiny):
    topo = named_genotypes(tiny)["chain_res3"]
    net = OpSupernet(tiny, topo, mode="mixture")
    assert net(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with torch.no_grad():
        for node, a in net.arch.items():
            a[net.node_ops[node].index("mb3e2")] = 3.0
    g = net.derive()
    assert set(g.ops.values()) == {"mb3e2"} and g.inputs == topo.inputs
