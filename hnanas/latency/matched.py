"""Random architectures at a given predicted latency: the fair baseline a searched network must beat.

A hardware-aware search is judged against random networks of the same space *at the same latency* (Yang et al.,
ICLR 2020; ``../shared/reference/search-eval.md``): :func:`sample_at_latency` draws genotypes whose latency, as
the same table predicts it, lies within ``tol`` (relative) of a target.

Rejection sampling from a broad prior, so that every latency band of the space is reachable, not only the middle
one that :func:`hnanas.nas.genotype.sample_genotype`'s fixed keep-probability of 1/2 and uniform ops concentrate on.
Each draw first picks its own density and op palette, then a genotype from them:

- a keep-probability ``q ~ U(0.05, 0.95)`` for every candidate edge (at least one input per node, as
  ``sample_genotype``), so topologies from a single chain to the dense grid appear;
- a random non-empty subset of the space's ops (its size uniform in 1..n), and for each node one op drawn
  uniformly from that subset, so all-cheap and all-expensive networks appear as well as mixed ones.

Within a band the accepted genotypes are therefore "a random network of this space that happens to cost T ms"
under that prior; the prior is part of the baseline's definition and is recorded with the samples. Draws are
deterministic per seed; duplicates and excluded genotypes (the searched one) are skipped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hnanas.errors import HnanasError
from hnanas.latency.table import LatencyTable
from hnanas.nas.genotype import Genotype, make_genotype
from hnanas.nas.space import SearchSpace

PRIOR = "keep-probability ~ U(0.05, 0.95) per draw; ops uniform within a random subset of the space's ops per draw"


@dataclass(frozen=True)
class Matched:
    """A sampled genotype and the table's prediction for it."""

    genotype: Genotype
    predicted_ms: float


def draw_genotype(space: SearchSpace, rng: random.Random, name: str = "") -> Genotype:
    """One draw from the broad prior described in the module docstring."""
    q = rng.uniform(0.05, 0.95)
    palette = rng.sample(list(space.ops), rng.randint(1, len(space.ops)))
    inputs = {}
    for n in space.nodes:
        kept = tuple(c for c in n.candidates if rng.random() < q)
        inputs[n.id] = kept or (rng.choice(n.candidates),)
    ops = {n.id: rng.choice(palette) for n in space.nodes}
    return make_genotype(space, inputs, ops, name=name)


def sample_at_latency(space: SearchSpace, table: LatencyTable, target_ms: float, k: int, *, tol: float = 0.05,
                      seed: int = 0, exclude: tuple[Genotype, ...] = (), max_draws: int = 200_000,
                      name: str = "random") -> list[Matched]:
    """``k`` distinct genotypes whose predicted latency is within ``tol`` x ``target_ms`` of ``target_ms``,
    named ``{name}_{i}`` in the order found. Raises :class:`HnanasError` when ``max_draws`` draws do not find
    ``k`` (a target outside what the space can cost, or a band too narrow)."""
    if not target_ms > 0 or not 0 < tol < 1 or k < 1:
        raise HnanasError(f"sample_at_latency: need target_ms > 0, 0 < tol < 1 and k >= 1 (got {target_ms}, "
                          f"{tol}, {k})")
    rng = random.Random(seed)
    seen = {(g.nodes) for g in exclude}
    found: list[Matched] = []
    lo, hi = target_ms * (1 - tol), target_ms * (1 + tol)
    for _ in range(max_draws):
        g = draw_genotype(space, rng)
        if g.nodes in seen:
            continue
        seen.add(g.nodes)
        ms = table.predict(g, space).total_ms
        if lo <= ms <= hi:
            named = make_genotype(space, g.inputs, g.ops, name=f"{name}_{len(found)}")
            found.append(Matched(named, ms))
            if len(found) == k:
                return found
    raise HnanasError(f"{table.path or 'latency table'}: found only {len(found)} of {k} genotypes of {space.name} "
                      f"within {100 * tol:g} % of {target_ms:.2f} ms in {max_draws} draws; is the target inside "
                      f"the range the space can cost? (widen the band or raise max_draws)")


def latency_range(space: SearchSpace, table: LatencyTable, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The lowest and highest predicted latency among ``n`` draws of the prior (for choosing targets)."""
    rng = random.Random(seed)
    values = [table.predict(draw_genotype(space, rng), space).total_ms for _ in range(n)]
    return min(values), max(values)


def latency_only_ops(space: SearchSpace, table: LatencyTable, topology: Genotype, name: str = "latency_only"
                     ) -> Genotype:
    """The ablation of stage 2's accuracy term: on ``topology``, the ops that minimise the table's prediction of
    the whole network -- what the latency term alone drives stage 2 to. Coordinate descent over nodes (each node
    takes the op that minimises the prediction with the others fixed, layout conversions included) until no
    node changes; starts from each node's cheapest op on its own."""
    inputs = topology.inputs
    ops = {}
    for node, ins, _ in topology.nodes:
        c_in = sum(space.channels_of(i) for i in ins)
        ops[node] = min(space.ops, key=lambda o: table.op_ms(space, o, c_in, node))

    def total(candidate: dict[str, str]) -> float:
        return table.predict(make_genotype(space, inputs, candidate), space).total_ms

    best = total(ops)
    changed = True
    while changed:
        changed = False
        for node in ops:
            for op in space.ops:
                trial = {**ops, node: op}
                ms = total(trial)
                if ms < best - 1e-9:
                    ops, best, changed = trial, ms, True
    return make_genotype(space, inputs, ops, name=name)
