"""Statistics for judging a search: a searched network against random ones, and how well a signal ranks networks.

- :func:`versus_random`: a network's mean over seeds against the means of random networks (at its latency):
  its percentile among them, how many it beats, the gap to their mean in units of the pooled seed standard
  deviation, and a bootstrap 95 % interval of that gap (``scipy.stats.bootstrap``: the searched network's seeds
  and the random networks' means resampled independently, so both the seed noise and the spread between random
  networks widen it).
- :func:`pooled_std`: the within-network (seed-to-seed) standard deviation pooled over networks,
  ``sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1))``.
- :func:`rank_agreement`: Kendall's tau and Spearman's rho (``scipy.stats``) between a signal and the truth,
  over the items both define.

Values are plain floats (fractions for IoU); nothing here knows about run folders.
"""

from __future__ import annotations

import math
import statistics
from typing import Mapping, Sequence

import numpy as np
from scipy import stats


def pooled_std(groups: Sequence[Sequence[float]]) -> float | None:
    """Pooled within-group sample standard deviation; ``None`` when no group has two values."""
    num = sum((len(g) - 1) * statistics.variance(g) for g in groups if len(g) > 1)
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    return math.sqrt(num / dof) if dof else None


def percentile_among(value: float, others: Sequence[float]) -> float:
    """Percent of ``others`` below ``value`` (ties count half): 100 = above all of them."""
    return float(stats.percentileofscore(list(others), value, kind="mean"))


def bootstrap_gap(searched: Sequence[float], random_means: Sequence[float], *, confidence: float = 0.95,
                  n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``mean(searched) - mean(random_means)``; ``None`` with fewer than two
    values on either side (nothing to resample)."""
    if len(searched) < 2 or len(random_means) < 2:
        return None
    res = stats.bootstrap((np.asarray(searched, float), np.asarray(random_means, float)),
                          lambda a, b, axis=-1: np.mean(a, axis=axis) - np.mean(b, axis=axis),
                          n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                          random_state=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def versus_random(searched: Sequence[float], random_nets: Mapping[str, Sequence[float]], *, seed: int = 0) -> dict:
    """The searched network's values over seeds against each random network's values over seeds.

    Returns ``searched_mean``, ``random_mean``, ``random_std`` (between networks), ``gap`` (searched mean minus
    the mean of the random means), ``pooled_seed_std`` (over the searched and the random networks),
    ``gap_in_pooled_std``, ``percentile`` (among the random means), ``beats`` (how many random means are below
    the searched mean) and ``n_random``, ``gap_ci95`` ([low, high] or None)."""
    if not searched or not random_nets or any(not v for v in random_nets.values()):
        raise ValueError("versus_random needs values for the searched network and for every random network")
    means = [statistics.fmean(v) for v in random_nets.values()]
    s_mean = statistics.fmean(searched)
    gap = s_mean - statistics.fmean(means)
    pooled = pooled_std([list(searched), *[list(v) for v in random_nets.values()]])
    ci = bootstrap_gap(searched, means, seed=seed)
    return {"searched_mean": s_mean, "random_mean": statistics.fmean(means),
            "random_std": statistics.stdev(means) if len(means) > 1 else None, "gap": gap,
            "pooled_seed_std": pooled, "gap_in_pooled_std": gap / pooled if pooled else None,
            "percentile": percentile_among(s_mean, means), "beats": sum(m < s_mean for m in means),
            "n_random": len(means), "gap_ci95": list(ci) if ci else None}


def rank_agreement(signal: Mapping[str, float | None], truth: Mapping[str, float | None]) -> dict:
    """Kendall's tau-b and Spearman's rho (with p-values) between ``signal`` and ``truth`` over the keys where
    both are finite numbers; ``n`` says how many. Fewer than 3 common items: the coefficients are ``None``."""
    keys = [k for k in signal if k in truth and _finite(signal[k]) and _finite(truth[k])]
    out: dict = {"n": len(keys), "kendall_tau": None, "kendall_p": None, "spearman_rho": None, "spearman_p": None}
    if len(keys) < 3:
        return out
    x = [float(signal[k]) for k in keys]
    y = [float(truth[k]) for k in keys]
    if len(set(x)) < 2 or len(set(y)) < 2:  # a constant ranks nothing
        return out
    tau = stats.kendalltau(x, y)
    rho = stats.spearmanr(x, y)
    out.update(kendall_tau=float(tau.statistic), kendall_p=float(tau.pvalue), spearman_rho=float(rho.statistic),
               spearman_p=float(rho.pvalue))
    return out


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))
