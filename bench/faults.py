"""Fault and bad-input matrix (issue 17, part 2): every fault is a real ``hnanas`` command run as a subprocess in a
temporary folder (tiny space, a 24-image synthetic dataset of 64x64, one-epoch budgets); the table says what it
did and whether anything was lost or left half-written.

    python bench/faults.py --json runs/faults.json            # the whole matrix (~1-2 min on 2 cores)
    python bench/faults.py --only cheap                       # the rows that train nothing (the test runs these)

A row passes when the command exits with the expected status (2: a bad input), its last stderr line is one
``hnanas: error: ...`` line naming the file, there is no traceback, and nothing was lost or half-written: no
temporary file left, no run folder left that a rerun would trip over, earlier outputs intact. The rows
themselves are in ``bench/fault_cases.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_cases import CASES  # noqa: E402  (bench/ on the path)
from fault_kit import Case, prepare_workspace  # noqa: E402


@dataclass
class Outcome:
    fault: str
    command: str
    rc: int
    expected_rc: int
    error: str
    damage: str
    ok: bool
    seconds: float
    why: list[str] = field(default_factory=list)  # why it failed, when it did


def hnanas_env(ws: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HNANAS_DATA": str(ws / "data"), "HNANAS_CACHE": str(ws / "cache"),
            "HNANAS_PROGRESS": "0", "OMP_NUM_THREADS": "1", "HNANAS_NO_TCMALLOC": "1"}


def run_hnanas(argv: list[str], ws: Path, *, cwd: Path | None = None,
               during: Callable[[subprocess.Popen], None] | None = None, timeout: float = 300
               ) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([sys.executable, "-m", "hnanas", *argv], env=hnanas_env(ws), cwd=cwd or ws,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if during is not None:
        during(proc)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def temp_files(root: Path) -> list[str]:
    """Temporary files of atomic writes (``.<name>.*.tmp``) left anywhere under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp"))


def judge(name: str, case: Case, result: subprocess.CompletedProcess, ws: Path, row: Path, seconds: float
          ) -> Outcome:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    why: list[str] = []
    if result.returncode != case.rc:
        why.append(f"exit {result.returncode}, expected {case.rc}")
    if "Traceback" in result.stderr:
        why.append("traceback")
    if case.warning:
        said = [ln for ln in lines if "warning" in ln.lower() and case.names in ln]
        line = said[0] if said else (lines[-1] if lines else "")
        if not said:
            why.append(f"no warning naming {case.names}")
    else:
        line = lines[-1] if lines else ""
        if not line.startswith("hnanas: error: "):
            why.append("last line is not one 'hnanas: error:' line")
        elif case.names not in line:
            why.append(f"error does not name {case.names}")
    damage = case.check() + [f"temporary file {t}" for t in temp_files(row)]
    why += damage
    command = "hnanas " + " ".join(a.replace(str(ws), "$W") for a in case.argv)
    return Outcome(name, command, result.returncode, case.rc, line.replace(str(ws), "$W")[:300],
                   "; ".join(damage).replace(str(ws), "$W") or "nothing", not why, round(seconds, 1),
                   [w.replace(str(ws), "$W") for w in why])


def run_case(name: str, build: Callable[[Path, Path], Case], ws: Path, index: int) -> Outcome:
    """Build the fault in its own folder ``ws/rows/<index>``, run its command, judge what happened there."""
    start = time.perf_counter()
    row = ws / "rows" / f"{index:02d}"
    row.mkdir(parents=True)
    try:
        case = build(ws, row)
    except Exception as exc:  # noqa: BLE001 - a row that cannot be set up here is reported, not fatal
        return Outcome(name, "(not run)", -1, 2, f"set-up failed: {exc}", "-", False, 0.0, ["set-up failed"])
    try:
        result = run_hnanas(case.argv, ws, cwd=case.cwd or row, during=case.during)
        return judge(name, case, result, ws, row, time.perf_counter() - start)
    finally:
        if case.cleanup is not None:
            case.cleanup()


def markdown(outcomes: list[Outcome], said: str = "the one-line error") -> str:
    rows = [f"| fault | command | exit status | {said} | lost or half-written | result |",
            "|---|---|---|---|---|---|"]
    for o in outcomes:
        cells = [o.fault, f"`{o.command}`", str(o.rc), o.error.replace("|", "\\|") or "(none)", o.damage,
                 "pass" if o.ok else "FAIL: " + "; ".join(o.why)]
        rows.append("| " + " | ".join(c.replace("\n", " ") for c in cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from hnanas.envinfo import environment
    from hnanas.fileio import write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, help="write the outcomes here")
    p.add_argument("--only", default=None,
                   help="comma-separated row names, or 'cheap' for the rows that train nothing")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = p.parse_args(argv)
    wanted = None if args.only in (None, "all") else set(args.only.split(","))
    rows = [(n, b) for n, b, cheap in CASES
            if wanted is None or n in wanted or ("cheap" in wanted and cheap)]
    if not rows:
        p.error(f"no rows match --only {args.only}; rows: {', '.join(n for n, _, _ in CASES)}")
    started = time.perf_counter()
    ws = Path(tempfile.mkdtemp(prefix="hnanas-faults-"))
    try:
        prepare_workspace(ws, lambda a: run_hnanas(a, ws))
        outcomes = []
        for i, (name, build) in enumerate(rows):
            outcome = run_case(name, build, ws, i)
            print(f"{'pass' if outcome.ok else 'FAIL'} {name} ({outcome.seconds:.1f} s)", file=sys.stderr, flush=True)
            outcomes.append(outcome)
    finally:
        if args.keep:
            print(f"kept {ws}", file=sys.stderr)
        else:
            shutil.rmtree(ws, ignore_errors=True)
    total = time.perf_counter() - started
    print(markdown(outcomes))
    passed = sum(o.ok for o in outcomes)
    print(f"\n{passed} of {len(outcomes)} rows pass; {total:.0f} s")
    if args.json:
        write_json(args.json, {"rows": [asdict(o) for o in outcomes], "passed": passed, "seconds": round(total, 1),
                               "environment": environment()})
    return 0 if passed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
