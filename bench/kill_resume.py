"""SIGKILL rows of the fault matrix (issue 17, part 2): ``search``, ``retrain``, ``profile`` and ``sweep`` on the tiny
space (24 synthetic 64x64 images, budgets of a few epochs, fp32) killed at N seeded random times, resumed after each
kill the way the command says (``--resume``; ``profile`` and ``sweep``: the same command again) until they finish,
then compared with an uninterrupted run; and killed inside a checkpoint or table write through the test hook of
``hnanas.fileio`` (``HNANAS_TEST_KILL_WRITE=NAME[:K]``: the K-th write of NAME is cut to half and the process
SIGKILLs itself before the rename).

    python bench/kill_resume.py --json runs/kill_resume.json        # 10 kills per command + the write kills
    python bench/kill_resume.py --only retrain,profile --kills 2    # a cheap version (tests/test_kill_resume.py)

A row passes when the command finishes, every file it left parses (JSON, YAML, CSV rows of the header's width,
checkpoints through ``hnanas.runs.load_checkpoint``, ONNX, PNG, SQLite), no temporary file of a write is left,
the folder holds the same files as the uninterrupted run's, and the results are identical where hnanas promises
it: retrain and search bit for bit (same machine and threads, fp32), sweep the same per point (the measured
latency is a timing), profile keeps every entry measured before a kill unchanged and measures each entry once.
The four commands are in ``bench/kill_cases.py``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faults import Outcome, hnanas_env, markdown, temp_files  # noqa: E402

RESTART = ("without --resume", "drop --resume")  # a resume refused as the run had not started: start it afresh


@dataclass
class Attempt:
    how: str  # fresh | resume | restart (the fresh command after a refused resume)
    seconds: float
    rc: int | None  # None: killed
    cut: list[str] = field(default_factory=list)  # temporary files right after the kill: a write cut short
    saved: bool = False  # at the kill, the run had saved progress (a checkpoint, a partial table)
    newest: str = ""  # the newest file of the output at the kill (where the run was)
    error: str = ""
    first_file_s: float | None = None  # seconds until the output's first file (when launch watched for it)


@dataclass
class KillOutcome(Outcome):
    attempts: list[dict] = field(default_factory=list)


def env_for(ws: Path, extra: dict | None = None) -> dict:
    return {**hnanas_env(ws), "HNANAS_CACHE_DIR": str(ws / "cache_dir"), **(extra or {})}


def launch(argv: list[str], ws: Path, out: Path, kill_after: float | None, how: str, extra_env: dict | None = None,
           timeout: float = 900, saved: str = "-", watch_first: bool = False) -> Attempt:
    """Run ``hnanas ARGV`` in its own process group; SIGKILL the group after ``kill_after`` seconds if it still
    runs (None: let it finish). ``watch_first``: record the seconds until the output's first file
    (``Attempt.first_file_s``)."""
    err = ws / "logs" / f"{time.monotonic_ns()}.err"
    err.parent.mkdir(exist_ok=True)
    start = time.perf_counter()
    with open(err, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "hnanas", *argv], env=env_for(ws, extra_env), cwd=ws,
                                stdout=subprocess.DEVNULL, stderr=f, start_new_session=True)
    first = None
    try:
        while watch_first and first is None and proc.poll() is None:
            if out.exists() and any(p.is_file() for p in out.rglob("*")):
                first = time.perf_counter() - start
            time.sleep(0.05)
        proc.wait(timeout=kill_after if kill_after is not None else timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # our own process group: the command and any child of it
        proc.wait()
        return Attempt(how, round(time.perf_counter() - start, 2), None, temp_files(out) if out.exists() else [],
                       any(out.glob(saved)), newest(out), first_file_s=first)
    lines = [ln for ln in err.read_text().splitlines() if ln.strip()]
    rc = proc.returncode
    return Attempt(how, round(time.perf_counter() - start, 2), rc, temp_files(out) if rc < 0 and out.exists() else [],
                   rc < 0 and any(out.glob(saved)), newest(out) if rc < 0 else "",
                   "" if rc == 0 else (lines[-1] if lines else f"exit {rc}"), first)


def newest(out: Path) -> str:
    files = [p for p in out.rglob("*") if p.is_file() and p.name != ".lock"] if out.exists() else []
    return str(max(files, key=lambda p: p.stat().st_mtime_ns).relative_to(out)) if files else "(nothing yet)"


def step(case, ws: Path, out: Path, first: bool, kill_after: float | None, extra_env: dict | None = None) -> list:
    """One attempt: the fresh command first, then the resume path; a resume refused because the run never started
    (the error says to run it without --resume) is followed by the fresh command, as a user would."""
    tried = [launch(case.fresh(out) if first else case.resume(out), ws, case.folder(out), kill_after,
                    "fresh" if first else "resume", extra_env, saved=case.saved)]
    if not first and tried[0].rc == 2 and any(r in tried[0].error for r in RESTART) and case.resume(out) != case.fresh(out):
        tried.append(launch(case.fresh(out), ws, case.folder(out), kill_after, "restart", extra_env, saved=case.saved))
    return tried


def killed_run(case, ws: Path, out: Path, delays: list[float], hook: str | None = None
               ) -> tuple[list, list[str], list[str]]:
    """Kill the command at each of ``delays`` (seconds into an attempt; the hook instead when given), resume
    after each kill, then let the last attempt finish. Returns the attempts, what went wrong, and notes."""
    attempts: list[Attempt] = []
    why: list[str] = []
    notes: list[str] = []
    first = True
    plan = [(None, {"HNANAS_TEST_KILL_WRITE": hook})] if hook else [(d, None) for d in delays]
    for kill_after, extra in plan:
        tried = step(case, ws, out, first, kill_after, extra)
        attempts += tried
        first = False
        last = tried[-1]
        if hook and last.rc != -signal.SIGKILL:
            why.append(f"the hook {hook} never fired (exit {last.rc})")
        if last.rc is None or last.rc == -signal.SIGKILL:
            case.after_kill(case.folder(out))
            if hook:
                wrong, note = cut_write(case.folder(out), hook)
                why += wrong
                notes += [note] * bool(note)
            continue
        if last.rc != 0:
            why.append(f"an attempt failed: {last.error}")
        break  # finished (or failed) before its kill
    else:
        attempts += step(case, ws, out, first, None)
    final = attempts[-1]
    if final.rc != 0:
        why.append(f"did not finish: exit {final.rc}: {final.error}")
    return attempts, why, notes


def unreadable(p: Path) -> str | None:
    """Why the file ``p`` does not read back whole (None: it does)."""
    import csv
    import json
    import sqlite3

    import yaml

    from hnanas.runs import load_checkpoint

    try:
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".yaml":
            yaml.safe_load(p.read_text())
        elif p.suffix == ".csv":
            rows = list(csv.reader(p.open(newline="")))
            if not rows or any(len(r) != len(rows[0]) for r in rows):
                raise ValueError("a row of another width (torn)")
        elif p.suffix == ".pt":
            load_checkpoint(p)
        elif p.suffix == ".onnx":
            import onnx

            onnx.load(str(p))
        elif p.suffix == ".png":
            from PIL import Image

            Image.open(p).verify()
        elif p.suffix == ".db":
            with sqlite3.connect(p) as db:
                if db.execute("pragma integrity_check").fetchone()[0] != "ok":
                    raise ValueError("integrity check failed")
    except Exception as exc:  # noqa: BLE001 - any failure to read back is the finding
        return f"{type(exc).__name__}: {str(exc)[:80]}"
    return None


def whole_files(folder: Path) -> list[str]:
    """Every file under ``folder`` that does not read back whole, and any temporary file of a write."""
    bad = [f"temporary file {t}" for t in temp_files(folder)]
    for p in sorted(q for q in folder.rglob("*") if q.is_file() and not q.name.endswith(".tmp")):
        why = unreadable(p)
        if why:
            bad.append(f"{p.relative_to(folder)} unreadable ({why})")
    return bad


def cut_write(folder: Path, hook: str) -> tuple[list[str], str]:
    """Right after the hook's kill: the half-written temporary file is there and the file it was to replace (if
    any) still reads back whole. Returns what is wrong and a note of what was kept."""
    name = hook.split(":")[0]
    temps = sorted(folder.rglob(f".{name}.*.tmp"))
    if not temps:
        return [f"no half-written temporary file of {name} after the kill"], ""
    target = temps[0].parent / name
    if not target.exists():
        return [], f"no {name} before the cut write"
    why = unreadable(target)
    if why:
        return [f"the previous {name} was damaged: {why}"], ""
    if target.suffix == ".pt":
        from hnanas.runs import load_checkpoint

        state = load_checkpoint(target)
        what = f"epoch {state.get('epoch')}" + (f" of stage {state['stage']}" if "stage" in state else "")
        return [], f"the previous {name} ({what}) read back whole"
    return [], f"the previous {name} read back whole"


def run_row(case, ws: Path, index: int, kills: int, seed: int, reference: dict | None, hook: str | None
            ) -> KillOutcome:
    start = time.perf_counter()
    row = ws / "rows" / f"{index:02d}"
    row.mkdir(parents=True)
    out = row / "out"
    rng = random.Random(f"{seed}:{case.name}")
    ref_s, start_s = (reference["seconds"], reference["startup"]) if reference else (case.expected_s, 5.0)
    # kill k lands after the start-up every attempt pays (imports, data, until the uninterrupted run's first file),
    # uniformly in the work after it, in a window that shrinks as the run gets further (later attempts have less
    # left) unless every attempt redoes most of its work before its first save (profile: calibration)
    delays = [round(start_s + rng.uniform(0.0, 1.0) * (ref_s - start_s) * (1 if not case.shrink else
                                                                            (kills - k) / kills), 2)
              for k in range(kills)]
    attempts, why, notes = killed_run(case, ws, out, delays, hook)
    folder = case.folder(out)
    damage = whole_files(folder) if attempts[-1].rc == 0 else []
    why += damage
    try:
        if attempts[-1].rc == 0 and reference:
            missing = case.files(reference["folder"]) - case.files(folder)
            extra = case.files(folder) - case.files(reference["folder"])
            why += [f"missing {', '.join(sorted(missing))}"] * bool(missing)
            why += [f"more files than the uninterrupted run: {', '.join(sorted(extra))}"] * bool(extra)
        if attempts[-1].rc == 0:
            why += case.compare(folder, reference["results"] if reference else None)
    except Exception as exc:  # noqa: BLE001 - a result that cannot be read back fails the row, not the bench
        why.append(f"results unreadable: {type(exc).__name__}: {exc}")
    n_kills = sum(a.rc is None or a.rc == -signal.SIGKILL for a in attempts)
    cut = sum(bool(a.cut) for a in attempts)
    saved = sum(a.saved for a in attempts)
    resumes = [a.how for a in attempts[1:]]
    did = (f"{n_kills} kill{'s' * (n_kills != 1)}"
           + (f" ({saved} after its first save, {cut} cutting a write short)" if not hook else "")
           + (f" of {kills}: it finished before the others" if not hook and n_kills < kills else "")
           + "".join(f"; {n}" for n in notes)
           + f"; {len(resumes)} rerun{'s' * (len(resumes) != 1)} ({', '.join(f'{resumes.count(h)} {h}' for h in dict.fromkeys(resumes))})"
           + ("; finished" if attempts[-1].rc == 0 else f"; ended with exit {attempts[-1].rc}")
           + ("; " + case.same if reference and not why else ""))
    fault = (f"SIGKILL inside the write of {hook.split(':')[0]} (write {hook.split(':')[1] if ':' in hook else 1})"
             if hook else f"SIGKILL at {kills} random times (seed {seed})")
    ws_s = str(ws)
    return KillOutcome(fault, "hnanas " + " ".join(a.replace(ws_s, "$W") for a in case.fresh(out)),
                       attempts[-1].rc if attempts[-1].rc is not None else -9, 0, did.replace(ws_s, "$W"),
                       "; ".join(damage).replace(ws_s, "$W") or "nothing", not why,
                       round(time.perf_counter() - start, 1), [w.replace(ws_s, "$W") for w in why],
                       [asdict(a) for a in attempts])


def main(argv: list[str] | None = None) -> int:
    from kill_cases import CASES, prepare

    from hnanas.envinfo import environment
    from hnanas.fileio import write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=None, help="comma-separated commands: " + ", ".join(c.name for c in CASES))
    p.add_argument("--kills", type=int, default=10, help="random kills per command (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-hooks", action="store_true", help="skip the kills inside writes")
    p.add_argument("--no-profile-reference", action="store_true",
                   help="skip profile's uninterrupted run (its entries are a timing: only their keys are compared)")
    p.add_argument("--json", type=Path, help="write the outcomes here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = p.parse_args(argv)
    wanted = None if args.only is None else set(args.only.split(","))
    cases = [c for c in CASES if wanted is None or c.name in wanted]
    if not cases:
        p.error(f"no commands match --only {args.only}")
    started = time.perf_counter()
    ws = Path(tempfile.mkdtemp(prefix="hnanas-kill-"))
    outcomes: list[KillOutcome] = []
    try:
        prepare(ws, lambda a: subprocess.run([sys.executable, "-m", "hnanas", *a], env=env_for(ws), cwd=ws,
                                             capture_output=True, text=True))
        for cls in cases:
            case = cls(ws)
            reference = None
            if not (case.name == "profile" and args.no_profile_reference):
                t0 = time.perf_counter()
                ref_out = ws / "reference" / case.name
                done = launch(case.fresh(ref_out), ws, case.folder(ref_out), None, "fresh", watch_first=True)
                if done.rc != 0:
                    raise RuntimeError(f"the uninterrupted {case.name} failed: {done.error}")
                reference = {"seconds": time.perf_counter() - t0, "startup": done.first_file_s or 0.0,
                             "folder": case.folder(ref_out),
                             "results": case.results(case.folder(ref_out))}
                print(f"reference {case.name}: {reference['seconds']:.0f} s (first file after "
                      f"{reference['startup']:.0f} s)", file=sys.stderr, flush=True)
            for hook in [None] + ([] if args.no_hooks else cls.hooks):
                case = cls(ws)  # a case keeps what it saw during its row (profile: the entries measured)
                outcome = run_row(case, ws, len(outcomes), args.kills, args.seed, reference, hook)
                print(f"{'pass' if outcome.ok else 'FAIL'} {case.name} {outcome.fault} ({outcome.seconds:.0f} s)"
                      + ("" if outcome.ok else f": {'; '.join(outcome.why)[:400]}"), file=sys.stderr, flush=True)
                outcomes.append(outcome)
    finally:
        if args.keep:
            print(f"kept {ws}", file=sys.stderr)
        else:
            shutil.rmtree(ws, ignore_errors=True)
    total = time.perf_counter() - started
    print(markdown(outcomes, said="what hnanas did"))
    passed = sum(o.ok for o in outcomes)
    print(f"\n{passed} of {len(outcomes)} rows pass; {total:.0f} s")
    if args.json:
        write_json(args.json, {"rows": [asdict(o) for o in outcomes], "passed": passed, "seconds": round(total, 1),
                               "kills": args.kills, "seed": args.seed, "environment": environment()})
    return 0 if passed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
