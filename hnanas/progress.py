"""Progress bars with ETA for long loops (tqdm), silent when output is not a terminal unless asked."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars are shown on a terminal; ``HNANAS_PROGRESS=1`` forces them on (e.g. in a log), ``0`` off."""
    flag = os.environ.get("HNANAS_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", leave: bool = True, initial: int = 0):
    """A tqdm bar (with ETA) over ``iterable``; use ``bar.update()`` when ``iterable`` is None."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, initial=initial,
                disable=not progress_enabled(), dynamic_ncols=True, file=sys.stderr)
