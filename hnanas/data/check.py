"""``data check``: read every file of a dataset once and report counts, sizes, mask values, target statistics
and every problem found. Read-only: it writes nothing, not even the normalisation cache.

Problems are ``error`` (missing, unreadable or non-image files, ids listed but absent, train/test overlap,
size mismatches under ``--on-mismatch error``, non-binary masks) or ``warning`` (size mismatches resized or
skipped, duplicated ids in a list, masks without an image). Each names the file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hnanas.data.augment import target_components
from hnanas.data.index import DatasetIndex
from hnanas.data.loading import (MismatchPolicy, SizeMismatch, apply_mismatch_policy, decode_image, mask_to_bool,
                                 mask_values, mismatch_message, non_binary, non_binary_message, read_header,
                                 resize_nearest)
from hnanas.data.splits import split_train_val
from hnanas.errors import DataError
from hnanas.progress import progress


@dataclass(frozen=True)
class Problem:
    severity: str  # error | warning
    message: str  # one line, naming the file


@dataclass
class SampleFacts:
    """What check learned about one readable sample."""

    id: str
    height: int
    width: int
    mode: str
    mask_values: tuple[int, ...]  # distinct raw mask values (first 8), () for a target-free background
    areas: list[int]  # pixel area of each 8-connected target
    pixel_sum: float = 0.0
    pixel_sq_sum: float = 0.0


@dataclass
class CheckReport:
    index: DatasetIndex
    split: str
    on_mismatch: str
    facts: dict[str, SampleFacts] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def add(self, severity: str, message: str) -> None:
        self.problems.append(Problem(severity, message))


def _check_splits(report: CheckReport) -> None:
    index = report.index
    for issue in index.list_issues:
        report.add("warning", issue)
    for split in index.splits.values():
        for ids, list_file in ((split.train, split.train_file), (split.test, split.test_file)):
            for sample_id in ids:
                image = index.items[sample_id].image
                if not image.exists():
                    report.add("error", f"{image}: image missing for id {sample_id!r} listed in {list_file}")
        overlap = sorted(set(split.train) & set(split.test))
        if overlap:
            report.add("error", f"{split.test_file}: {len(overlap)} id(s) also in {split.train_file} "
                                f"(train/test overlap: {', '.join(overlap[:5])})")
    for path in index.unmatched_masks:
        report.add("warning", f"{path}: mask without an image; ignored")


def _check_sample(report: CheckReport, sample_id: str) -> None:
    paths = report.index.items[sample_id]
    try:
        height, width, mode = read_header(paths.image, "image")
        image = decode_image(paths.image)
    except DataError as exc:
        report.add("error", str(exc))
        return
    values: tuple[int, ...] = ()
    areas: list[int] = []
    if paths.mask is not None:
        try:
            raw = mask_values(paths.mask)
        except DataError as exc:
            report.add("error", str(exc))
            return
        distinct = np.unique(raw)
        values = tuple(int(v) for v in distinct[:8])
        if non_binary(raw) is not None:
            report.add("error", non_binary_message(paths.mask, distinct))
        mask = mask_to_bool(raw)
        if mask.shape != image.shape:
            try:
                apply_mismatch_policy(paths.mask, mask.shape, image.shape, report.on_mismatch, warn=False)
                report.add("warning", f"{mismatch_message(paths.mask, mask.shape, image.shape)}; resized to "
                                      f"the image size (nearest neighbour)")
                mask = resize_nearest(mask, image.shape)
            except SizeMismatch as exc:
                report.add("error" if report.on_mismatch == "error" else "warning", str(exc))
                return
        areas = [len(c) for c in target_components(mask)]
    pixels = image.astype(np.float64)
    report.facts[sample_id] = SampleFacts(sample_id, height, width, mode, values, areas,
                                          float(pixels.sum()), float(np.square(pixels).sum()))


def check_dataset(index: DatasetIndex, split: str | None = None,
                  on_mismatch: MismatchPolicy = "resize") -> CheckReport:
    """Check every split list and every sample of ``index``; statistics are also broken down for the train
    and test lists of ``split`` (default: the dataset's default split)."""
    chosen = index.split(split)
    report = CheckReport(index, chosen.name, on_mismatch)
    _check_splits(report)
    for sample_id in progress(list(index.items), desc="checking", unit="img"):
        if index.items[sample_id].image.exists():
            _check_sample(report, sample_id)
    return report


def _target_lines(facts: list[SampleFacts], label: str) -> list[str]:
    if not facts:
        return [f"{label:<10}no readable samples"]
    per_image = [len(f.areas) for f in facts]
    areas = [a for f in facts for a in f.areas]
    hist = Counter(min(n, 3) for n in per_image)
    lines = [f"{label:<10}{len(facts)} images; targets per image mean {np.mean(per_image):.2f}, min "
             f"{min(per_image)}, max {max(per_image)} (0: {hist[0]}, 1: {hist[1]}, 2: {hist[2]}, 3+: {hist[3]})"]
    if areas:
        lines.append(f"{'':<10}target area px (8-connected): min {min(areas)}, median {np.median(areas):g}, "
                     f"max {max(areas)}; {len(areas)} targets")
    return lines


def format_report(report: CheckReport) -> str:
    """The check report as text (the CLI prints it)."""
    index, facts = report.index, report.facts
    chosen = index.split(report.split)
    lines = [f"dataset   {index.name} ({index.root}, layout {index.layout})",
             f"samples   {len(index.items)} ids, {len(facts)} readable"]
    same = {n: [m for m, o in index.splits.items() if m != n and (o.train, o.test) == (s.train, s.test)]
            for n, s in index.splits.items()}
    for name in sorted(index.splits):
        s = index.splits[name]
        tags = (" [default]" if name == index.default_split else "") + \
               (f" (same lists as {', '.join(same[name])})" if same[name] else "")
        lines.append(f"split     {name}: train {len(s.train)}, test {len(s.test)}{tags}")
    _, val_part = split_train_val(chosen.train)
    lines.append(f"selected  {chosen.name}: train {len(chosen.train)} (of which validation {len(val_part)} at "
                 f"20 %, seed 0), test {len(chosen.test)}")
    if facts:
        hs = [f.height for f in facts.values()]
        ws = [f.width for f in facts.values()]
        sizes = Counter((f.width, f.height) for f in facts.values())
        modes = Counter(f.mode for f in facts.values())
        lines.append(f"images    width {min(ws)}..{max(ws)}, height {min(hs)}..{max(hs)} ({len(sizes)} distinct "
                     f"sizes); modes " + ", ".join(f"{m} {c}" for m, c in modes.most_common()))
        sets = Counter("{" + ",".join(map(str, f.mask_values)) + "}" if f.mask_values else "none (background)"
                       for f in facts.values())
        empty = sum(1 for f in facts.values() if not f.areas)
        lines.append("masks     value sets " + ", ".join(f"{k} x{v}" for k, v in sets.most_common(6)) +
                     f"; empty (target-free) {empty}")
        lines += _target_lines(list(facts.values()), "targets")
        for label, ids in (("train", chosen.train), ("test", chosen.test)):
            lines += _target_lines([facts[i] for i in ids if i in facts], label)
        train_facts = [facts[i] for i in chosen.train if i in facts]
        n = sum(f.height * f.width for f in train_facts)
        if n:
            mean = sum(f.pixel_sum for f in train_facts) / n
            std = max(sum(f.pixel_sq_sum for f in train_facts) / n - mean * mean, 0.0) ** 0.5
            lines.append(f"normalise train of {chosen.name}: mean {mean:.2f}, std {std:.2f} (0..255 scale)")
    listed = {i for s in index.splits.values() for i in (*s.train, *s.test)}
    unlisted = [i for i in index.items if i not in listed]
    if unlisted:
        lines.append(f"note      {len(unlisted)} image(s) in no split list (e.g. {', '.join(unlisted[:3])})")
    errors, warnings = len(report.errors), len(report.problems) - len(report.errors)
    lines.append(f"problems  {errors} error(s), {warnings} warning(s)" + (":" if report.problems else ""))
    lines += [f"  {p.severity}: {p.message}" for p in report.problems]
    return "\n".join(lines)
