"""Genotypes as Optuna trial parameters (the halving strategy's encoding of the search space).

One categorical per candidate edge, ``e:<node>:<input>`` in {0, 1} (nodes with a single candidate input keep
it), and one per node's op, ``op:<node>``. :func:`genotype_of` decodes a parameter setting, :func:`params_of`
encodes a genotype (its inverse on the network).
"""

from __future__ import annotations

import random
from typing import Iterator

from hnanas.nas.genotype import Genotype, make_genotype
from hnanas.nas.space import SearchSpace


def param_space(space: SearchSpace) -> Iterator[tuple[str, str, str | None, list]]:
    """(parameter name, node id, candidate input or None for the op, choices) of every trial parameter."""
    for n in space.nodes:
        for c in n.candidates if len(n.candidates) > 1 else ():
            yield f"e:{n.id}:{c}", n.id, c, [0, 1]
        yield f"op:{n.id}", n.id, None, list(space.ops)


def genotype_of(space: SearchSpace, params: dict, name: str = "") -> Genotype:
    """A candidate from its parameters (a node that keeps no input keeps its first candidate)."""
    inputs = {n.id: [c for c in n.candidates if len(n.candidates) == 1 or params[f"e:{n.id}:{c}"]]
              or [n.candidates[0]] for n in space.nodes}
    return make_genotype(space, inputs, {n.id: params[f"op:{n.id}"] for n in space.nodes}, name=name)


def params_of(space: SearchSpace, g: Genotype, rng: random.Random) -> dict:
    """The trial parameters of a genotype (the inverse of :func:`genotype_of`). A node the genotype leaves out
    stays out whatever its own parameters (no kept node takes it as input), so they are drawn from ``rng``: TPE
    learns from such trials parameter by parameter and must not see the first op everywhere."""
    params = {}
    for key, node, cand, choices in param_space(space):
        if node not in g.inputs:
            params[key] = rng.choice(choices)
        else:
            params[key] = int(cand in g.inputs[node]) if cand is not None else g.ops[node]
    if genotype_of(space, params).nodes != g.nodes:
        raise AssertionError(f"halving: parameters of {g.name} do not give it back")  # a bug, not bad input
    return params
