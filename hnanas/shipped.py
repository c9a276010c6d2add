"""Where the files hnanas ships live: the search spaces (``search_spaces/*.yaml``) and the measured latency
tables (``latency_tables/``).

In a checkout (and an editable install) they are the repository's folders, the source of truth for
development. A built wheel carries copies as package data (``hnanas/_shipped/<folder>/``, mapped from those
folders in ``pyproject.toml``), found through :mod:`importlib.resources`. Tables a user profiles go to
:func:`user_tables_dir`: the repository's folder in a checkout, ``./latency_tables`` of the working folder
when installed (never into site-packages).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("search_spaces", "latency_tables")


def in_checkout() -> bool:
    """True when hnanas runs from a source checkout (its ``pyproject.toml`` beside the package)."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "search_spaces").is_dir()


def shipped_dir(folder: str) -> Path:
    """The folder of shipped files ``folder`` (one of :data:`FOLDERS`)."""
    if folder not in FOLDERS:
        raise ValueError(f"{folder}: not a shipped folder ({', '.join(FOLDERS)})")
    if in_checkout():
        return REPO_ROOT / folder
    return Path(str(resources.files("hnanas") / "_shipped" / folder))


def user_tables_dir() -> Path:
    """Where ``hnanas profile`` writes a table by default, and where tables are looked for first."""
    return REPO_ROOT / "latency_tables" if in_checkout() else Path("latency_tables").resolve()
