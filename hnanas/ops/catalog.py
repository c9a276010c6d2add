"""``hnanas ops list``: every registered op with its family, re-param flag, parameters and MACs at a shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hnanas.ops.counting import count_macs, count_params
from hnanas.ops.registry import build_op, list_ops, op_info


@dataclass(frozen=True)
class OpSummary:
    """One row of ``ops list``: sizes at (C, H, W) with c_in = c_out = C, stride 1, train and deploy form."""

    name: str
    family: str
    reparameterizable: bool
    same_shape_only: bool
    params_train: int
    params_deploy: int
    macs_train: int
    macs_deploy: int
    description: str

    def to_dict(self) -> dict:
        return asdict(self)


def summarize_ops(shape: tuple[int, int, int] = (16, 256, 256)) -> list[OpSummary]:
    """An :class:`OpSummary` per registered op, in registry order (counting runs on the meta device)."""
    c = shape[0]
    rows = []
    for name in list_ops():
        info = op_info(name)
        train, deploy = build_op(name, c, c, 1), build_op(name, c, c, 1, deploy=True)
        rows.append(OpSummary(name, info.family, info.reparameterizable, info.same_shape_only,
                              count_params(train), count_params(deploy),
                              count_macs(train, shape), count_macs(deploy, shape), info.description))
    return rows


def _both(train: int, deploy: int, fmt) -> str:
    """``deploy`` alone when both forms agree, else ``train -> deploy``."""
    return fmt(deploy) if train == deploy else f"{fmt(train)} -> {fmt(deploy)}"


def _si(n: int) -> str:
    """Compact count: 640, 4.67k, 1.11M, 72.55G."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.2f}{suffix}"
    return str(n)


def format_op_table(rows: list[OpSummary], shape: tuple[int, int, int]) -> str:
    """A fixed-width table of ``rows``; where train and deploy form differ, cells read ``train -> deploy``."""
    cells = [(r.name, r.family, "yes" if r.reparameterizable else "no",
              _both(r.params_train, r.params_deploy, _si), _both(r.macs_train, r.macs_deploy, _si),
              r.description + (" [same shape only]" if r.same_shape_only and "only" not in r.description else ""))
             for r in rows]
    header = ("op", "family", "re-param", "params", "MACs", "description")
    widths = [max(len(header[i]), *(len(row[i]) for row in cells)) for i in range(5)]

    def line(row):
        cols = [f"{row[i]:<{widths[i]}}" if i < 2 else f"{row[i]:>{widths[i]}}" for i in range(5)]
        return "  ".join(cols + [row[5]])

    c, h, w = shape
    out = [line(header), "-" * (sum(widths) + 2 * 5 + len(header[5]))]
    out += [line(row) for row in cells]
    out.append(f"at input {c}x{h}x{w} (c_in = c_out = {c}, stride 1); 'a -> b' = train form -> deploy form; "
               f"MACs count convolutions and matrix products")
    return "\n".join(out)
