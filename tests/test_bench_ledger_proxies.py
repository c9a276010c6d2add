"""bench/ledger_proxies.py: zero-cost figures of the ledgers' networks scored as the other seeds' test IoU ranks
them, alone, beside one run's validation signal, and in the halving score with ``halving.grad_norm_weight``."""

from __future__ import annotations

import pytest

from _helpers import load_bench

IOU = {f"n{i}": 0.1 * i for i in range(1, 7)}  # the same test IoU on every seed


def curves():
    rows = lambda iou: [{"epoch": str(e), "loss": str(1 - iou * e / 3), "val_loss": str(1 - iou * e / 3),  # noqa: E731
                         "val_iou": str(iou * e / 3)} for e in (1, 2, 3)]
    return {n: {s: (iou, rows(iou)) for s in range(3)} for n, iou in IOU.items()}


def test_a_proxy_is_scored_alone_and_in_the_halving_score_as_its_weight_says():
    bench = load_bench("ledger_proxies")
    # params rise with test IoU, ln grad norm too (the opposite of what the ledgers measured), the rest are flat
    # but for one network, so their tau is defined and small
    proxies = {n: {"params": iou, "macs": 1.0, "predicted_ms": 10.0, "grad_norm": iou, "snip": 1.0, "synflow": 1.0}
               for n, iou in IOU.items()}
    for p in ("macs", "predicted_ms", "snip", "synflow"):
        proxies["n1"][p] = 2.0
    roles = {n: "random" if n != "n6" else "searched" for n in IOU}
    result = bench.score(curves(), proxies, roles, [1.0], [0.05, 100.0])
    assert result["seeds"] == [0, 1, 2] and result["ceiling_tau"] == pytest.approx(1.0)
    assert result["alone"]["params"]["tau_heldout"] == pytest.approx(1.0)
    assert result["alone"]["params"]["n_random"] == 5 and result["alone"]["params"]["tau_random_only"] == pytest.approx(1.0)
    assert result["alone"]["macs"]["tau_all_seeds"] < 0
    halving = {(r["epoch"], r["grad_norm_weight"]): r["tau"] for r in result["halving_score"]}
    # the score is best_val_iou's signal + w x ln grad norm (lower is better): at w 0 and a small w it ranks as
    # the validation IoU (the truth's order); weighed 100x, the grad norm's order, which is backwards
    assert halving[3, 0.0] == halving[3, 0.05] == pytest.approx(1.0)
    assert halving[3, 100.0] == pytest.approx(-1.0)
    mixed = {(r["epoch"], r["proxy"], r["weight"]): r["tau"] for r in result["with_best_val_iou"]}
    assert mixed[1, None, 0.0] == pytest.approx(1.0) and mixed[1, "-params", 1.0] is None  # constant: no rank
    assert bench.halving_score(curves()["n3"][0][1], 2, 0.5, 0.1) == pytest.approx(1 - 0.2 + 1e-3 * 0.8 + 0.05)
