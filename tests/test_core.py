"""Core helpers: strict configs, atomic writes, the CLI shell."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

import hnanas
from hnanas.cli import main
from hnanas.config import NULL, assignments, from_dict, override, to_dict
from hnanas.errors import ConfigError
from hnanas.fileio import atomic_path, read_yaml, stable_hash, write_json


@dataclass
class Optim:
    lr: float = 0.1  # learning rate
    name: Literal["adam", "sgd"] = "adam"  # optimiser


@dataclass
class Cfg:
    epochs: int = 3
    flag: bool = False
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    optim: Optim = field(default_factory=Optim)


def test_from_dict_round_trip_and_nested():
    cfg = from_dict(Cfg, {"epochs": 5, "optim": {"lr": 1}})
    assert cfg.epochs == 5 and cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert from_dict(Cfg, to_dict(cfg)) == cfg


@pytest.mark.parametrize("data, words", [
    ({"epoch": 1}, "unknown key 'epoch'"),
    ({"flag": "True"}, "expected true/false"),
    ({"epochs": 1.5}, "expected an integer"),
    ({"optim": {"name": "rmsprop"}}, "not one of"),
    ({"optim": {"lrr": 1}}, "unknown key 'lrr'"),
    ({"sizes": [1, "a"]}, "sizes[1]"),
])
def test_from_dict_rejects_bad_input_naming_source_and_key(data, words):
    with pytest.raises(ConfigError) as exc:
        from_dict(Cfg, data, source="my.yaml")
    assert "my.yaml" in str(exc.value) and words in str(exc.value)


def test_override_dotted_keys_and_unknown():
    cfg = override(Cfg(), {"optim.lr": 0.5, "epochs": None})
    assert cfg.optim.lr == 0.5 and cfg.epochs == 3
    with pytest.raises(ConfigError, match="unknown key 'optim.momentum'"):
        override(Cfg(), {"optim.momentum": 0.9})


def test_assignments_read_yaml_scalars_and_refuse_what_is_not_key_value():
    changes = assignments(["optim.lr=0.5", "flag=true", "optim.name=sgd", "epochs=null"])
    assert changes == {"optim.lr": 0.5, "flag": True, "optim.name": "sgd", "epochs": NULL}
    cfg = override(Cfg(), {k: v for k, v in changes.items() if k != "epochs"})
    assert cfg.optim.lr == 0.5 and cfg.flag is True and cfg.optim.name == "sgd"
    with pytest.raises(ConfigError, match="--set: 'epochs' is not KEY=VALUE"):
        assignments(["epochs"], source="--set")
    with pytest.raises(ConfigError, match="is not a value"):
        assignments(["sizes=[1"])


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text().strip().startswith("{") and list(tmp_path.iterdir()) == [target]


def test_read_yaml_reports_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML at line \d"):
        read_yaml(bad)
    with pytest.raises(ConfigError, match="file not found"):
        read_yaml(tmp_path / "missing.yaml")


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and hnanas.__version__ in capsys.readouterr().out
