"""Entry latencies for providers that report no per-node times (CUDA: launch times only; TensorRT: one fused
engine): time each context model end to end and subtract its context.

An entry's time is its context model's time minus half of the identity contexts (``ctx_pre -> ctx_post``,
nothing between) of the shapes it reads and writes, plus half a run overhead per extra input (the smallest
identity context stands for the run overhead). It is an approximation -- the context's own layout conversions
and kernel fusions are not separated -- that calibration and validation on whole networks quantify. Layout
conversions are not modelled on these providers (reorder entries cost 0).
"""

from __future__ import annotations

import pandas as pd

from hnanas.latency.entries import KEY_COLUMNS, Entry

IDENTITY = "identity"


def out_size(e: Entry) -> tuple[int, int]:
    if e.kind == "resample":
        f = int(e.parts[4:] if e.parts.startswith("down") else e.parts[2:])
        return (e.h // f, e.w // f) if e.parts.startswith("down") else (e.h * f, e.w * f)
    return e.h, e.w


def boundary_shapes(e: Entry) -> list[tuple[int, int, int]]:
    """(channels, h, w) of the tensors an entry reads and (except the head) writes."""
    ins = [int(c) for c in e.parts.split("+")] if e.kind == "concat" else [e.c_in]
    out = [] if e.kind == "head" else [(e.c_out, *out_size(e))]
    return [(c, e.h, e.w) for c in ins] + out


def identity_entries(entries: list[Entry]) -> list[Entry]:
    """The identity contexts the end-to-end method subtracts, one per boundary shape."""
    shapes = sorted({s for e in entries if e.kind != "reorder" for s in boundary_shapes(e)})
    return [Entry(IDENTITY, IDENTITY, c, c, h, w) for c, h, w in shapes]


def entry_times(rows: pd.DataFrame) -> pd.Series:
    """Per row: the entry's time from its context time (identity and reorder rows are returned as they are)."""
    ident = {(r.c_in, r.h, r.w): r.median_ms for r in rows[rows.kind == IDENTITY].itertuples()}
    overhead = min(ident.values()) if ident else 0.0
    out = []
    for r in rows.itertuples():
        if r.kind not in ("op", "resample", "concat", "head"):
            out.append(r.median_ms)
            continue
        shapes = boundary_shapes(Entry(**{c: getattr(r, c) for c in KEY_COLUMNS}))
        base = sum(ident.get(shape, 0.0) for shape in shapes)
        n_in = len(shapes) if r.kind == "head" else len(shapes) - 1
        out.append(max(r.median_ms - base / 2 + (n_in - 1) * overhead / 2, 0.0))
    return pd.Series(out, index=rows.index)
