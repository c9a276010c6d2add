"""Small file helpers: atomic writes, safe YAML/JSON, hashing.

Every file hnanas writes goes through a temporary file in the same folder followed by ``os.replace``, so an
interrupted command never leaves a half-written table, checkpoint or report behind. A temporary file is named
``.<name>.<host>.<pid>.<random>.tmp``: one left by a killed writer (SIGKILL runs no clean-up) is removed by the next
write of the same file, or by :func:`remove_dead_temps` when a run folder is opened, once its process is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from hnanas.errors import ConfigError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``, on error removed."""
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temps(path.parent, target=path.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_writer()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        _test_kill_in_write(path, tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        os.replace(tmp_path, path)
    except OSError as exc:  # a full disk, a read-only folder: name the file being written, not the temporary
        if exc.filename is None or exc.filename == str(tmp_path) or exc.filename == str(path.parent):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def _writer() -> str:
    """This process, as temporary file names record it: ``<host>.<pid>`` (the host without dots)."""
    return f"{socket.gethostname().replace('.', '_')[:64]}.{os.getpid()}"


def _dead_writer(tag: str) -> bool:
    """Whether the ``<host>.<pid>`` that made a temporary file is a process of this host that no longer runs (a
    writer on another host sharing the folder is never judged from here)."""
    host, _, pid = tag.rpartition(".")
    if host != _writer().rpartition(".")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def remove_dead_temps(folder: str | os.PathLike, *, target: str | None = None, recursive: bool = False) -> list[Path]:
    """Remove the temporary files of atomic writes (of ``target`` only, if given) in ``folder`` whose writer was
    killed (its process is gone); returns them. Temporary files of live writers, of other hosts and of unknown
    form are left alone."""
    folder = Path(folder)
    pattern = f".{target}.*.tmp" if target else ".*.tmp"
    removed = []
    for tmp in (folder.rglob(pattern) if recursive else folder.glob(pattern)):
        stem = tmp.name[:-len(".tmp")]  # .<name>.<host>.<pid>.<random>
        tag = stem.rsplit(".", 1)[0]  # .<name>.<host>.<pid>
        name, _, pid = tag.rpartition(".")
        host = name.rpartition(".")[2]
        if _dead_writer(f"{host}.{pid}"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


KILL_ENV = "HNANAS_TEST_KILL_WRITE"


def _test_kill_in_write(path: Path, tmp: Path) -> None:
    """Test hook, inert unless ``$HNANAS_TEST_KILL_WRITE`` is set to ``NAME[:K]``: at the ``K``-th (default first)
    atomic write of a file called ``NAME`` in this process, cut the written temporary file to half its size and
    SIGKILL the process before the rename: what the disk holds when a kill lands in the middle of that write.
    ``bench/kill_resume.py`` uses it to kill inside checkpoint and table writes."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if path.name != name:
        return
    _KILL_COUNT[name] = _KILL_COUNT.get(name, 0) + 1
    if _KILL_COUNT[name] == int(nth or 1):
        os.truncate(tmp, tmp.stat().st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)


_KILL_COUNT: dict[str, int] = {}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, dumps_json(obj))


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None


def write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, yaml.safe_dump(obj, sort_keys=False, default_flow_style=None))


def read_yaml(path: str | os.PathLike) -> Any:
    """Load a YAML file with ``safe_load``; a syntax error names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stable_hash(obj: Any, length: int = 12) -> str:
    """Hash of a JSON-serialisable object that does not depend on key order or formatting."""
    canon = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return sha256_bytes(canon.encode("utf-8"))[:length]


def json_safe(value: Any) -> Any:
    """NaN (e.g. Pd of a split without targets) becomes null, so the JSON files are strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
