"""Supernets: parameter split, gates, sampled paths and derivation."""

from __future__ import annotations

import pytest
import torch

from hnanas.nas.genotype import make_genotype, named_genotypes
from hnanas.nas.space import load_space
from hnanas.search.supernet import OpSupernet, TopologySupernet, edge_gates


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
    ms = lambda g: float(model(edge_gates(tiny, g.inputs)))  # noqa: E731
    dense = named_genotypes(tiny)["dense_res3"]
    assert ms(plain) < ms(dense)
    assert net.derive_topology(budget=model, budget_ms=ms(plain) * 0.5).inputs == plain.inputs  # over budget: as is
    assert net.derive_topology(budget=model, budget_ms=ms(dense) + 1).inputs == dense.inputs  # room for all
    middle = (ms(plain) + ms(dense)) / 2
    filled = net.derive_topology(budget=model, budget_ms=middle)
    assert ms(plain) < ms(filled) <= middle
    assert all(set(plain.inputs[n]) <= set(filled.inputs.get(n, ())) for n in plain.inputs if n in filled.inputs)
    with torch.no_grad():  # the output's own edges the least probable: the fill must still grow from the output
        net.arch[tiny.output].fill_(-0.02)
    for budget in (middle, ms(plain) * 1.2, ms(plain) * 1.5):
        grown = net.derive_topology(budget=model, budget_ms=budget)
        assert ms(grown) <= budget
        for n in tiny.nodes:  # maximal: no edge between nodes the output reaches would still fit
            if n.id not in grown.inputs or len(n.candidates) == 1:
                continue
            for c in n.candidates:
                if c not in grown.inputs[n.id] and c in grown.inputs:
                    more = {k: list(v) for k, v in grown.inputs.items()}
                    more[n.id].append(c)
                    assert ms(make_genotype(tiny, more, "res3")) > budget, (budget, n.id, c)


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


def test_budget_fill_grows_from_the_output_on_a_real_search_state():
    """Edge probabilities of a quick hinge search's last stage-1 epoch (rep_nested, T = 45 ms): the threshold keeps
    a 2-node network; filling in plain probability order had added edges into unreachable nodes first (free until
    connected) and then could connect none of them."""
    import math
    from hnanas.latency.expected import EdgeLatencyModel
    from hnanas.latency.table import LatencyTable, default_table_path
    space = load_space("rep_nested")
    model = EdgeLatencyModel(LatencyTable.load(default_table_path(space, "cpu", 1), space=space, device="cpu"), space)
    probs = {"0_1": [0.4626, 0.4828, 0.4689, 0.4157, 0.3222], "0_2": [0.3699, 0.4151, 0.4482, 0.3742, 0.463],
             "0_3": [0.3939, 0.4176, 0.32, 0.5257], "0_4": [0.4074, 0.3565, 0.5713],
             "1_1": [0.4729, 0.4792, 0.4537, 0.4588, 0.4566, 0.2949],
             "1_2": [0.3603, 0.4218, 0.4693, 0.4801, 0.3509, 0.4939], "1_3": [0.4051, 0.3493, 0.3866, 0.3731, 0.6101],
             "2_1": [0.482, 0.4814, 0.4341, 0.4665, 0.4011, 0.2861],
             "2_2": [0.3372, 0.4031, 0.454, 0.4861, 0.327, 0.3518],
             "3_1": [0.4641, 0.4009, 0.4727, 0.5293, 0.5438, 0.2553]}
    net = TopologySupernet(space)
    with torch.no_grad():
        for node, p in probs.items():
            net.arch[node].copy_(torch.tensor([math.log(q / (1 - q)) for q in p]))
        plain = net.derive_topology()
        filled = net.derive_topology(budget=model, budget_ms=45.0)
    ms = lambda g: float(model(edge_gates(space, g.inputs)))  # noqa: E731
    assert len(plain.inputs) == 2 and ms(plain) < 5
    assert len(filled.inputs) >= 8 and 40 < ms(filled) <= 45.0
