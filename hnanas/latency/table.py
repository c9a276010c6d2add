"""``LatencyTable``: a measured table (CSV) with its provenance (JSON sidecar), lookups and predictions.

The CSV has one row per entry: key columns (``entries.KEY_COLUMNS``) and ``median_ms, p10_ms, p90_ms, n``. The
sidecar says where and how it was measured (device, providers, threads, ORT/onnx versions, CPU, space name and
hash, date, ...), the fixed overhead per network, and, after ``hnanas profile validate``, the validation figures
and an optional linear correction ``measured ~ a * predicted + b``. Loading a table for another space (hash) or
device is an error; another onnxruntime version is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hnanas.errors import ConfigError, HnanasError
from hnanas.fileio import read_json, write_json, write_text
from hnanas.latency import machine
from hnanas.latency.entries import (KEY_COLUMNS, Entry, concat_entry, head_entry, nchw_variant, op_entry,
                                    reorder_entry, resample_entry)
from hnanas.nas.genotype import Genotype
from hnanas.nas.network import node_in_channels
from hnanas.nas.space import SearchSpace
from hnanas.shipped import in_checkout, shipped_dir, user_tables_dir

FORMAT = "hnanas-latency-table/1"
TABLES_DIR = shipped_dir("latency_tables")  # the shipped tables (the repository's folder in a checkout)


def sidecar_path(csv_path: str | Path) -> Path:
    return Path(csv_path).with_suffix(".json")


def table_dirs() -> list[Path]:
    """Where default tables are looked for, in order: in a checkout the repository's ``latency_tables/``; when
    installed, first the tables the user profiled (``./latency_tables``), then the shipped ones."""
    return [TABLES_DIR] if in_checkout() else [user_tables_dir(), TABLES_DIR]


def profile_table_path(space: SearchSpace, device: str, threads: int) -> Path:
    """Where ``hnanas profile`` writes the table of ``space`` on ``device`` at ``threads`` by default."""
    return table_dirs()[0] / f"{space.name}_{device}_t{threads}.csv"


def default_table_path(space: SearchSpace, device: str, threads: int) -> Path:
    """The table that prices ``space`` on ``device`` at ``threads`` unless one is given. For the ``cpu`` device,
    the first table measured on this CPU with this onnxruntime: a profile in :func:`table_dirs`, else this
    machine's quick transfer (``hnanas profile quick``, :mod:`hnanas.latency.machine`). Otherwise the first of
    :func:`table_dirs` that has it (else where ``profile`` would write it)."""
    name = f"{space.name}_{device}_t{threads}.csv"
    dirs = table_dirs()
    found = [d / name for d in dirs if (d / name).is_file()]
    if device in machine.MACHINE_DEVICES:
        quick = machine.machine_table_path(space.name, device, threads)
        for path in found + ([quick] if quick.is_file() else []):
            meta = read_json(sidecar_path(path)) if sidecar_path(path).is_file() else {}
            if isinstance(meta, dict) and machine.measured_here(meta):
                return path
    return found[0] if found else dirs[0] / name


@dataclass
class Prediction:
    """A derived network's predicted latency and where it goes."""

    total_ms: float  # corrected when the table has a (validation) correction, else = raw_ms
    raw_ms: float  # network_factor * sum of entries + fixed overhead (the table's calibration)
    nodes_ms: dict[str, float] = field(default_factory=dict)  # per kept node: its op blocks + concat
    resample_ms: float = 0.0
    reorder_ms: float = 0.0  # layout conversions between entries (NCHW <-> blocked NCHWc)
    head_ms: float = 0.0
    overhead_ms: float = 0.0
    corrected: bool = False

    def to_dict(self) -> dict:
        return {"total_ms": self.total_ms, "raw_ms": self.raw_ms, "corrected": self.corrected,
                "overhead_ms": self.overhead_ms, "head_ms": self.head_ms, "resample_ms": self.resample_ms,
                "reorder_ms": self.reorder_ms, "nodes_ms": self.nodes_ms}


class LatencyTable:
    """Lookups over one measured table."""

    def __init__(self, frame: pd.DataFrame, meta: dict, path: Path | None = None):
        self.frame = frame
        self.meta = meta
        self.path = path
        self._rows = {Entry(**{c: r[c] for c in KEY_COLUMNS}).key: r for r in frame.to_dict("records")}

    # -------------------------------------------------------------------------------------------- I/O
    @classmethod
    def load(cls, path: str | Path, *, space: SearchSpace | None = None, device: str | None = None
             ) -> "LatencyTable":
        path = Path(path)
        if not path.is_file():
            raise HnanasError(f"{path}: no such latency table; measure one with `hnanas profile`")
        meta = read_json(sidecar_path(path)) if sidecar_path(path).exists() else None
        if not meta or meta.get("format") != FORMAT:
            raise ConfigError(f"{sidecar_path(path)}: missing or not an hnanas latency-table sidecar")
        try:
            frame = pd.read_csv(path, keep_default_na=False)
        except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
            raise ConfigError(f"{path}: unreadable CSV ({exc})") from None
        missing = [c for c in KEY_COLUMNS + ["median_ms"] if c not in frame.columns]
        if missing:
            raise ConfigError(f"{path}: missing columns {missing}")
        times = pd.to_numeric(frame["median_ms"], errors="coerce")
        bad = [i for i, t in enumerate(times) if not (t >= 0 and t != float("inf"))]  # NaN fails t >= 0
        if bad:
            raise ConfigError(f"{path}: line {bad[0] + 2}: median_ms {frame['median_ms'][bad[0]]} is not a time "
                              f"in ms (a finite number >= 0; {len(bad)} such row(s)); restore the file or "
                              f"re-measure it with `hnanas profile`")
        frame["median_ms"] = times
        table = cls(frame, meta, path)
        if space is not None and (meta.get("space_hash") != space.hash):
            raise HnanasError(f"{path}: measured for space {meta.get('space')} ({meta.get('space_hash')}), not "
                              f"{space.name} ({space.hash}); profile this space: hnanas profile --space "
                              f"{space.source or space.name} --latency-device {meta.get('device', 'cpu')}")
        if device is not None and meta.get("device") != device:
            raise HnanasError(f"{path}: measured on device {meta.get('device')!r}, not {device!r}; pass a table of "
                              f"{device!r} or measure one: hnanas profile --latency-device {device}")
        machine.warn_other_machine(path, meta)
        machine.warn_other_runtime(path, meta)
        return table

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        write_json(sidecar_path(path), {**self.meta, "format": FORMAT})
        write_text(path, self.frame.to_csv(index=False, float_format="%.5g"))
        self.path = path
        return path

    # ---------------------------------------------------------------------------------------- lookups
    @property
    def overhead_ms(self) -> float:
        return float(self.meta.get("fixed_overhead_ms", 0.0))

    @property
    def network_factor(self) -> float:
        """Entries run ~5-10 % slower inside a whole network than in their small contexts (larger working set);
        profiling calibrates this factor and the fixed overhead on calibration networks."""
        return float(self.meta.get("network_factor", 1.0))

    def network_ms(self, entries_ms):
        """A network's latency from the sum of its entries (floats or torch tensors)."""
        return self.network_factor * entries_ms + self.overhead_ms

    @property
    def correction(self) -> dict | None:
        return self.meta.get("correction")

    def corrected(self, raw_ms):
        """Apply the linear correction stored by validation, if any (floats and torch tensors)."""
        c = self.correction
        return raw_ms if not c else c["a"] * raw_ms + c["b"]

    def entries_sum(self, genotype: Genotype, space: SearchSpace) -> float:
        """The plain sum of a network's entries and conversions (what calibration fits against)."""
        p = self.predict(genotype, space)
        return (p.raw_ms - self.overhead_ms) / self.network_factor

    def row(self, entry: Entry) -> dict:
        try:
            return self._rows[entry.key]
        except KeyError:
            raise HnanasError(f"{self.path or 'latency table'}: no entry {entry.key}; the table does not cover "
                              f"this network (re-profile the space with `hnanas profile`)") from None

    def ms(self, entry: Entry) -> float:
        return float(self.row(entry)["median_ms"])

    def layouts(self, entry: Entry) -> tuple[str, str]:
        """(input layout, output layout) the entry runs in; "" where it does not care (e.g. identity)."""
        r = self.row(entry)
        return str(r.get("in_layout", "") or ""), str(r.get("out_layout", "") or "")

    def follow(self, entry: Entry, have: list[str]) -> Entry:
        """The row a layout-following entry (resample, concat) runs as, given its inputs' layouts: ORT runs it
        blocked only when every input arrives blocked, else on plain NCHW inputs -- its ``@nchw`` variant, when
        that was measured to take NCHW (an entry that forces its layout keeps its row, and conversions are
        added)."""
        if self.layouts(entry)[0] != "nchwc" or all(h == "nchwc" for h in have):
            return entry
        variant = nchw_variant(entry)
        if variant.key not in self._rows:
            raise HnanasError(f"{self.path or 'latency table'}: no entry {variant.key} (the entry on plain NCHW "
                              f"inputs); the table predates layout-following entries: re-profile the space with "
                              f"`hnanas profile`")
        return variant if self.layouts(variant)[0] == "nchw" else entry

    def reorder_ms(self, to_layout: str, channels: int, h: int, w: int) -> float:
        return self.ms(reorder_entry(to_layout, channels, h, w))

    def op_ms(self, space: SearchSpace, op: str, c_in: int, node_id: str) -> float:
        """One node's op: first block ``c_in -> width``, then ``blocks - 1`` blocks ``width -> width``."""
        n = space.node(node_id)
        h, w = space.resolution(n.level)
        first = self.ms(op_entry(op, c_in, n.width, h, w))
        return first + (n.blocks - 1) * self.ms(op_entry(op, n.width, n.width, h, w)) if n.blocks > 1 else first

    def concat_ms(self, space: SearchSpace, inputs: tuple[str, ...], node_id: str) -> float:
        if len(inputs) < 2:
            return 0.0
        h, w = space.resolution(space.node(node_id).level)
        return self.ms(concat_entry([space.channels_of(i) for i in inputs], h, w))

    def resample_ms(self, space: SearchSpace, src: str, level: int) -> float:
        if space.level_of(src) == level:
            return 0.0
        return self.ms(resample_entry(space, space.channels_of(src), space.level_of(src), level))

    def head_ms(self, space: SearchSpace) -> float:
        return self.ms(head_entry(space))

    # --------------------------------------------------------------------------------------- predicting
    def predict(self, genotype: Genotype, space: SearchSpace) -> Prediction:
        """Predicted latency of the derived network of ``genotype`` (deploy form, deployment size): its entries,
        plus one layout conversion per tensor and layout that a consumer needs and its producer does not give
        (ONNX Runtime shares such a conversion among all consumers of a tensor), plus the fixed overhead."""
        tensors: dict = {"input": (space.input_channels, 0, "nchw")}  # tensor -> (channels, level, layout)
        needs: dict = {}
        nodes, resample = {}, 0.0

        def need(tensor, layout: str) -> None:
            if layout:
                needs.setdefault(tensor, set()).add(layout)

        def produce(tensor, channels: int, level: int, layout: str, source) -> None:
            tensors[tensor] = (channels, level, layout or tensors[source][2])

        for node, ins, op in genotype.nodes:
            n = space.node(node)
            h, w = space.resolution(n.level)
            parts = []
            for src in ins:
                src_level, c = space.level_of(src), space.channels_of(src)
                if src_level == n.level:
                    parts.append(src)
                    continue
                t = ("resampled", src, n.level)
                if t not in tensors:
                    e = self.follow(resample_entry(space, c, src_level, n.level), [tensors[src][2]])
                    lin, lout = self.layouts(e)
                    resample += self.ms(e)
                    need(src, lin)
                    produce(t, c, n.level, lout, src)
                parts.append(t)
            cost = 0.0
            if len(parts) > 1:
                e = concat_entry([space.channels_of(i) for i in ins], h, w)
                e = self.follow(e, [tensors[t][2] for t in parts])
                lin, lout = self.layouts(e)
                cost += self.ms(e)
                for t in parts:
                    need(t, lin)
                x = ("concat", node)
                produce(x, e.c_in, n.level, lout, parts[0])
            else:
                x = parts[0]
            c_in = node_in_channels(space, ins)
            for b in range(n.blocks):
                e = op_entry(op, c_in if b == 0 else n.width, n.width, h, w)
                lin, lout = self.layouts(e)
                cost += self.ms(e)
                need(x, lin)
                y = node if b == n.blocks - 1 else ("block", node, b)
                produce(y, n.width, n.level, lout, x)
                x = y
            nodes[node] = cost
        e = head_entry(space)
        lin, lout = self.layouts(e)
        need(space.output, lin)
        produce("logits", 1, 0, lout, space.output)
        need("logits", "nchw")  # the graph's output is plain NCHW
        reorder = 0.0
        for t, layouts in needs.items():
            c, level, have = tensors[t]
            h, w = space.resolution(level)
            reorder += sum(self.reorder_ms(lay, c, h, w) for lay in layouts if lay != have)
        head = self.ms(e)
        raw = self.network_ms(sum(nodes.values()) + resample + reorder + head)
        return Prediction(total_ms=float(self.corrected(raw)), raw_ms=raw, nodes_ms=nodes, resample_ms=resample,
                          reorder_ms=reorder, head_ms=head, overhead_ms=self.overhead_ms,
                          corrected=self.correction is not None)
