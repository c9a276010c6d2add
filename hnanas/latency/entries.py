"""What a latency table holds: the entries a space's derived networks execute, and the context models that
measure each one.

A derived network runs, per kept node: the node's op ``blocks`` times (in deploy form), the concatenation of its
inputs (when it keeps more than one), and the resampling of each input to its level (each (source, level) pair
once, shared); then a 1x1 head. Between them, ONNX Runtime converts tensors between memory layouts (plain NCHW
and the blocked NCHWc of its CPU kernels) wherever a consumer runs in another layout than its producer; which
kernels run blocked depends on the device (e.g. channel counts that are not a multiple of the SIMD block).

:func:`space_entries` lists every such piece that any genotype of the space can produce: each op at every
input-channel count a subset of a node's candidates can sum to, every concat of two or more candidates, every
resample, the head, and a layout conversion in each direction for every tensor shape that can occur.
:func:`context_model` wraps an entry between cheap ``ctx_pre``/``ctx_post`` convs that give it the memory
layouts its neighbours give it in a network, so it is measured as it runs there; ``runner.py`` charges it its
own kernels only and reports the layouts it consumes and produces, so the predictor can add the conversions a
given network needs.

Some entries do not force a layout but follow their input's: ORT runs a bilinear resize or a concat blocked only
when its input(s) arrive blocked, and in plain NCHW otherwise -- where a bilinear upsample costs ~4x more. Such an
entry measured blocked (``in_layout`` "nchwc") is measured a second time on plain inputs as its
:func:`nchw_variant` (name + "@nchw"); the predictor picks the row its producers' layouts select.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from itertools import combinations
from typing import Iterable

import torch
import torch.nn as nn

from hnanas.nas.network import resample
from hnanas.nas.space import SearchSpace
from hnanas.ops import build_op, op_info

KINDS = ("op", "resample", "concat", "head", "reorder")
LAYOUT_COLUMNS = ["in_layout", "out_layout"]
KEY_COLUMNS = ["kind", "name", "c_in", "c_out", "h", "w", "stride", "parts"]


@dataclass(frozen=True, order=True)
class Entry:
    """One row of a latency table (its key columns)."""

    kind: str  # op | resample | concat | head | reorder (| identity: helper rows of e2e.py, never in a table)
    name: str  # op name; resample: down/upsample mode; concat: "concat"; head: "conv1x1"; reorder: to_nchw|to_nchwc;
    #            + "@nchw" for a layout-following entry measured on plain NCHW inputs (nchw_variant)
    c_in: int  # input channels (concat: their sum)
    c_out: int  # output channels
    h: int  # input height
    w: int  # input width
    stride: int = 1  # op stride (ops of nested spaces run at stride 1; levels change by resampling)
    parts: str = ""  # concat: the input channels in order ("8+16+8"); resample: level change ("down2", "up4")

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}:{self.c_in}:{self.c_out}:{self.h}x{self.w}:s{self.stride}:{self.parts}"

    def row(self) -> dict:
        return asdict(self)


NCHW_SUFFIX = "@nchw"
FOLLOWING_KINDS = ("resample", "concat")  # kinds whose layout ORT may take from their inputs


def nchw_variant(entry: Entry) -> Entry:
    """``entry`` measured on plain NCHW inputs (see the module docstring)."""
    return replace(entry, name=entry.name + NCHW_SUFFIX)


def is_nchw_variant(entry: Entry) -> bool:
    return entry.name.endswith(NCHW_SUFFIX)


def layout_variants(rows: Iterable[dict]) -> list[Entry]:
    """The variants to measure, given measured rows: one per layout-following entry that ran blocked."""
    out = []
    for r in rows:
        e = Entry(**{c: r[c] for c in KEY_COLUMNS})
        if e.kind in FOLLOWING_KINDS and not is_nchw_variant(e) and r.get("in_layout") == "nchwc":
            out.append(nchw_variant(e))
    return sorted(out)


def op_entry(op: str, c_in: int, c_out: int, h: int, w: int) -> Entry:
    return Entry("op", op, c_in, c_out, h, w)


def resample_entry(space: SearchSpace, channels: int, src_level: int, dst_level: int) -> Entry:
    h, w = space.resolution(src_level)
    d = dst_level - src_level
    mode, parts = (space.downsample, f"down{1 << d}") if d > 0 else (space.upsample, f"up{1 << -d}")
    return Entry("resample", mode, channels, channels, h, w, 1, parts)


def concat_entry(channels: Iterable[int], h: int, w: int) -> Entry:
    channels = tuple(channels)
    return Entry("concat", "concat", sum(channels), sum(channels), h, w, 1, "+".join(map(str, channels)))


def reorder_entry(to_layout: str, channels: int, h: int, w: int) -> Entry:
    """Converting a ``channels`` x h x w tensor into layout ``to_layout`` ("nchw" or "nchwc")."""
    return Entry("reorder", f"to_{to_layout}", channels, channels, h, w)


def head_entry(space: SearchSpace) -> Entry:
    h, w = space.resolution(0)
    return Entry("head", "conv1x1", space.node(space.output).width, 1, h, w)


def node_input_sums(space: SearchSpace, node_id: str) -> list[int]:
    """Every input-channel count the node can get: sums of non-empty subsets of its candidates."""
    widths = [space.channels_of(c) for c in space.node(node_id).candidates]
    return sorted({sum(c) for k in range(1, len(widths) + 1) for c in combinations(widths, k)})


def space_entries(space: SearchSpace, ops: Iterable[str] | None = None) -> list[Entry]:
    """All entries any genotype of ``space`` can execute, sorted (ops default: the space's ops + stage-1 op)."""
    ops = list(dict.fromkeys(list(ops or space.ops) + [space.stage1_op]))
    out: set[Entry] = {head_entry(space)}
    for n in space.nodes:
        h, w = space.resolution(n.level)
        c_ins = node_input_sums(space, n.id)
        for op in ops:
            same_only = op_info(op).same_shape_only
            for c_in in c_ins:
                if not (same_only and c_in != n.width):
                    out.add(op_entry(op, c_in, n.width, h, w))
            if n.blocks > 1:
                out.add(op_entry(op, n.width, n.width, h, w))
        for src in n.candidates:
            if space.level_of(src) != n.level:
                out.add(resample_entry(space, space.channels_of(src), space.level_of(src), n.level))
        widths = [space.channels_of(c) for c in n.candidates]
        for k in range(2, len(widths) + 1):
            for comb in combinations(widths, k):
                out.add(concat_entry(comb, h, w))
        # every tensor that can exist at this level: node outputs, resampled inputs, concat outputs
        for c in set(c_ins) | set(widths) | {n.width}:
            out |= {reorder_entry("nchw", c, h, w), reorder_entry("nchwc", c, h, w)}
    h, w = space.resolution(0)
    out |= {reorder_entry("nchw", 1, h, w), reorder_entry("nchwc", 1, h, w)}  # the input image and the logits
    return sorted(out)


# ------------------------------------------------------------------------------------------ context models
class _Resample(nn.Module):
    def __init__(self, entry: Entry, space: SearchSpace):
        super().__init__()
        factor = int(entry.parts[4:] if entry.parts.startswith("down") else entry.parts[2:])
        d = factor.bit_length() - 1
        self.src, self.dst = (0, d) if entry.parts.startswith("down") else (d, 0)
        self.down, self.up = space.downsample, space.upsample

    def forward(self, x):
        return resample(x, self.src, self.dst, self.down, self.up)


class _Concat(nn.Module):
    def forward(self, *xs):
        return torch.cat(xs, dim=1)


class _Abs(nn.Module):
    """A layout-neutral stand-in that ONNX Runtime runs in NCHW, so conversions around it can be timed."""

    def forward(self, x):
        return torch.abs(x)


CONTEXT_VERSION = 4  # bump when context models change: tables and interrupted profiles record it
CONTEXT_IN = 16  # channels of a context model's graph input (an aligned block width)


def _pre(channels: int, plain: bool = False) -> nn.Module:
    """A cheap producer of a ``channels`` x h x w tensor that ORT keeps blocked (NCHWc) where it can, as the
    3x3 convs before an entry in a network are: a 3x3 conv on an aligned 16-channel input, then a 1x1 conv to
    ``channels`` (ORT blocks a pointwise conv only when its input is blocked). ``plain``: end with an op ORT runs
    in NCHW, so the entry gets a plain NCHW tensor (as after a grouped conv in a network)."""
    layers = [nn.Conv2d(CONTEXT_IN, CONTEXT_IN, 3, padding=1), nn.Conv2d(CONTEXT_IN, channels, 1)]
    return nn.Sequential(*layers, _Abs()) if plain else nn.Sequential(*layers)


def _post(channels: int) -> nn.Module:
    """A cheap consumer that ORT blocks whatever the layout it gets (a (1, 3) conv is not pointwise)."""
    return nn.Conv2d(channels, CONTEXT_IN, (1, 3), padding=(0, 1))


class ContextModel(nn.Module):
    """``ctx_pre`` per input -> core -> ``ctx_post`` (none for the head, whose output is the network's output).

    The neighbours give the entry the memory layouts it meets in a network without costing much more than it:
    a 3x3 conv c -> c around a 248-channel entry at 256x256 would cost ~36 GMAC, far more than most entries."""

    def __init__(self, core: nn.Module, in_channels: list[int], out_channels: int | None, plain: bool = False):
        super().__init__()
        self.ctx_pre = nn.ModuleList([_pre(c, plain) for c in in_channels])
        self.core = core
        self.ctx_post = _post(out_channels) if out_channels else None

    def forward(self, *xs):
        y = self.core(*[pre(x) for pre, x in zip(self.ctx_pre, xs)])
        return self.ctx_post(y) if self.ctx_post is not None else y


def context_model(entry: Entry, space: SearchSpace) -> tuple[nn.Module, list[torch.Tensor]]:
    """The context model measuring ``entry`` and example inputs of the right shapes (batch 1)."""
    if entry.kind == "op":
        core, ins, out = build_op(entry.name, entry.c_in, entry.c_out, entry.stride, deploy=True), [entry.c_in], \
            entry.c_out
    elif entry.kind == "resample":
        core, ins, out = _Resample(entry, space), [entry.c_in], entry.c_out
    elif entry.kind == "concat":
        core, ins, out = _Concat(), [int(c) for c in entry.parts.split("+")], entry.c_out
    elif entry.kind == "head":
        core, ins, out = nn.Conv2d(entry.c_in, entry.c_out, 1), [entry.c_in], None
    elif entry.kind == "reorder":  # both directions are timed in one model: blocked -> abs -> blocked
        core, ins, out = _Abs(), [entry.c_in], entry.c_out
    elif entry.kind == "identity":  # the bare context (end-to-end timing subtracts it; see e2e.py)
        core, ins, out = nn.Identity(), [entry.c_in], entry.c_out
    else:
        raise ValueError(f"unknown entry kind {entry.kind!r}")
    model = ContextModel(core, ins, out, plain=is_nchw_variant(entry)).eval()
    return model, [torch.randn(1, CONTEXT_IN, entry.h, entry.w) for _ in ins]
