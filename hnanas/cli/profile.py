"""``hnanas profile``: measure, validate, bundle and import latency tables."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hnanas.cli.common import add_deprecated_alias
from hnanas.errors import HnanasError
from hnanas.fileio import write_json

log = logging.getLogger(__name__)

HELP = """Measure a latency table of a search space on a device with ONNX Runtime.

  hnanas profile --latency-device cpu [--space rep_nested] [--threads 1] [--out PATH]     measure (resumable)
  hnanas profile validate --table PATH [--n 20] [--json OUT]                       predicted vs measured nets
  hnanas profile quick [--space rep_nested] [--threads 1] [--table BASE]            this machine in minutes
  hnanas profile --latency-device jetson --bundle OUT.zip                          for devices without torch
  hnanas profile import RESULT.csv --latency-device jetson [--space ...] [--out PATH]  bundle results -> table

Every entry (op in deploy form at each input-channel count the space can produce, concat, resample, head, and
layout conversions) is timed inside a small context model from ONNX Runtime's per-node profile, so per-run
overhead and boundary layout reorders are not charged to it; one fixed overhead per network is then measured on
reference networks. Tables go to latency_tables/<space>_<device>_t<threads>.csv with a JSON sidecar.

A table measured on another CPU mispredicts this one by tens of percent. `profile quick` (cpu only, a few
minutes) re-fits a measured table (default: the shipped one) on 24 whole networks timed here, one scale per
op / concat / resample / layout-conversion group, and caches the result for this CPU and onnxruntime under
~/.cache/hnanas/latency_tables/ ($HNANAS_CACHE_DIR); searches and reports then price with it by default."""


def register(sub) -> None:
    p = sub.add_parser("profile", help="measure/validate/bundle/import latency tables",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["import", "validate", "quick"], help="(default: measure)")
    p.add_argument("result", nargs="?", help="import: the runner's results.csv")
    p.add_argument("--latency-device", dest="device", metavar="DEVICE", default=None,
                   help="cpu | edge-cpu | gpu | jetson (default cpu)")
    add_deprecated_alias(p, "--device", "--latency-device")
    p.add_argument("--space", default=None,
                   help="search-space name or YAML file (default rep_nested; validate: the table's)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: device's)")
    p.add_argument("--out", type=Path, help="table CSV (default latency_tables/<space>_<device>_t<threads>.csv)")
    p.add_argument("--fresh", action="store_true", help="ignore an interrupted profile instead of resuming it")
    p.add_argument("--sessions", type=int, default=2, help="fresh ORT sessions per entry (default 2)")
    p.add_argument("--fp16", action="store_true", help="TensorRT fp16 (jetson)")
    p.add_argument("--bundle", type=Path, help="write a profiling bundle (zip) for the device instead")
    p.add_argument("--table", type=Path, help="validate: the table CSV; quick: the table to re-fit (default: the "
                   "space's shipped/profiled one)")
    p.add_argument("--force", action="store_true", help="quick: redo it even if this machine is already priced")
    p.add_argument("--n", type=int, default=20, help="validate: random networks to measure (default 20)")
    p.add_argument("--seed", type=int, default=0, help="validate: seed of the random networks")
    p.add_argument("--no-correction", action="store_true",
                   help="validate: store no linear correction (and drop a stored one)")
    p.add_argument("--json", type=Path, help="validate/import: write the validation report here")
    p.set_defaults(func=run)


def run(args) -> int:
    from hnanas.latency.profiler import ProfileSettings
    from hnanas.latency.table import LatencyTable, profile_table_path
    from hnanas.nas.space import load_space
    from hnanas.runtime import get_device

    if args.action == "validate":
        from hnanas.latency.validate import format_report, validate_table

        if not args.table:
            raise HnanasError("profile validate needs --table PATH")
        meta = LatencyTable.load(args.table).meta
        space = load_space(args.space or meta.get("space_source") or meta["space"])
        table = LatencyTable.load(args.table, space=space)
        from hnanas.latency import machine

        # a check of a table from another CPU (a shipped one, say) must not rewrite that table's file
        report = validate_table(table, space, n=args.n, seed=args.seed, allow_correction=not args.no_correction)
        report["stored"] = (table.meta.get("device") not in machine.MACHINE_DEVICES
                            or machine.measured_here(table.meta))
        if report["stored"]:
            table.save(args.table)
        print(format_report(report))
        if not report["stored"]:
            print(f"  {args.table} left as it is: measured on {machine.describe(table.meta)}, not this machine "
                  f"({machine.this_cpu()}, onnxruntime {machine.ort_version()}); price this machine with "
                  f"`hnanas profile quick --space {space.source or space.name}`")
        if args.json:
            write_json(args.json, report)
        return 0

    device = args.device or "cpu"
    spec = get_device(device)
    threads = args.threads or spec.default_threads
    space = load_space(args.space or "rep_nested")
    out = args.out or profile_table_path(space, device, threads)
    settings = ProfileSettings(device=device, threads=threads, sessions=args.sessions, fp16=args.fp16)

    if args.action == "quick":
        return _quick(args, space, device, threads)

    if args.action == "import":
        from hnanas.latency.bundle import import_results

        if not args.result:
            raise HnanasError("profile import needs the runner's RESULT.csv")
        table, report = import_results(Path(args.result), space, device)
        table.save(out)
        print(f"imported {len(table.frame)} entries -> {out}")
        if report:
            raw = report["raw"]
            print(f"validation on {report['n']} networks: raw MAPE {raw['mape']:.1f} %, Spearman "
                  f"{raw['spearman']:.3f}; corrected: {report['corrected']}")
            if args.json:
                write_json(args.json, report)
        return 0

    if args.bundle:
        from hnanas.latency.bundle import write_bundle

        path = write_bundle(space, args.bundle, settings)
        print(f"wrote {path}: unzip it on the device and run `python3 runner.py . --out results.csv`")
        return 0

    from hnanas.latency.profiler import profile_space

    table = profile_space(space, Path(out), settings, fresh=args.fresh)
    m = table.meta
    print(f"{out}: {m['n_entries']} entries of {space.name} on {device} ({threads} thread(s)) in "
          f"{m['profile_seconds']:.0f} s; calibrated on {len(m['calibration_networks'])} networks: network = "
          f"{m['network_factor']:.3f} x entries + {m['fixed_overhead_ms']:.2f} ms")
    print(f"next: hnanas profile validate --table {out}")
    return 0


def _quick(args, space, device: str, threads: int) -> int:
    from hnanas.latency import machine
    from hnanas.latency.table import sidecar_path, table_dirs
    from hnanas.latency.transfer import TransferSettings, quick_profile, transfer_status

    if device not in machine.MACHINE_DEVICES:
        raise HnanasError(f"profile quick prices this machine's CPU (--latency-device cpu), not {device!r}; profile "
                          f"that device with `hnanas profile --latency-device {device}`")
    name = f"{space.name}_{device}_t{threads}.csv"
    base = args.table or next((d / name for d in table_dirs() if (d / name).is_file()), None)
    if base is None:
        raise HnanasError(f"profile quick: no table {name} to re-fit; give one with --table or profile the space: "
                          f"hnanas profile --space {space.source or space.name} --threads {threads}")
    out = args.out or machine.machine_table_path(space.name, device, threads)
    settings = TransferSettings(device=device, threads=threads)
    needed, why = (True, "") if args.force else transfer_status(Path(base), Path(out), settings)
    if why:
        print(why)
    if not needed:
        return 0
    table = quick_profile(Path(base), space, Path(out), settings)
    t = table.meta["transfer"]
    refs = t["references"].values()
    before = sum(abs(r["base_raw_ms"] / r["measured_ms"] - 1) for r in refs) / len(refs) * 100
    print(f"{out}: {base.name} re-fitted on {len(refs)} networks timed on {machine.this_cpu()} in {t['seconds']:.0f} s; "
          f"reference error {before:.1f} % with the base table -> {t['loo_mape']:.1f} % (leave-one-out)")
    print(f"sidecar: {sidecar_path(out)}; next: hnanas profile validate --table {out}")
    return 0
