"""The wheel's contents: every package listed in pyproject.toml, the shipped folders mapped in as package data, and
where an installed hnanas looks for spaces and tables (the wheel itself is built and used by .ci/wheel_check)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hnanas import shipped
from hnanas.latency import table as latency_table
from hnanas.nas.space import load_space

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package_and_maps_the_shipped_folders():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hnanas").rglob("__init__.py")}
    listed = set(config["packages"])
    assert found == {p for p in listed if not p.startswith("hnanas._shipped.")}, "update pyproject.toml's packages"
    for folder in shipped.FOLDERS:
        assert config["package-dir"][f"hnanas._shipped.{folder}"] == folder
        patterns = config["package-data"][f"hnanas._shipped.{folder}"]
        files = {p.name for p in (ROOT / folder).iterdir() if p.is_file()}
        assert files and all(any(Path(f).match(pat) for pat in patterns) for f in files), folder


def test_a_checkout_reads_and_writes_the_repository_folders():
    assert shipped.in_checkout()
    assert shipped.shipped_dir("search_spaces") == ROOT / "search_spaces"
    assert latency_table.table_dirs() == [ROOT / "latency_tables"]
    assert shipped.user_tables_dir() == ROOT / "latency_tables"


def test_installed_hnanas_prefers_the_users_tables_and_never_writes_into_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(latency_table, "in_checkout", lambda: False)
    monkeypatch.setattr(shipped, "in_checkout", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert shipped.shipped_dir("latency_tables") == Path(shipped.__file__).parent / "_shipped" / "latency_tables"
    space = load_space("rep_nested")
    shipped_table = latency_table.TABLES_DIR / "rep_nested_cpu_t1.csv"
    assert latency_table.table_dirs() == [tmp_path / "latency_tables", latency_table.TABLES_DIR]
    assert latency_table.default_table_path(space, "cpu", 1) == shipped_table  # none profiled here yet
    assert latency_table.profile_table_path(space, "cpu", 1) == tmp_path / "latency_tables" / shipped_table.name
    (tmp_path / "latency_tables").mkdir()
    (tmp_path / "latency_tables" / shipped_table.name).write_text("profiled here")
    assert latency_table.default_table_path(space, "cpu", 1) == tmp_path / "latency_tables" / shipped_table.name
    assert latency_table.default_table_path(space, "cpu", 9) == tmp_path / "latency_tables" / "rep_nested_cpu_t9.csv"
