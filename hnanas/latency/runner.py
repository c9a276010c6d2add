"""Standalone ONNX Runtime profiling runner: measures latency-table entries on a device.

This file is copied verbatim into profiling bundles (``hnanas profile --bundle``) and must run with nothing but
Python 3.8+, numpy and onnxruntime: no torch, no onnx, no hnanas. hnanas itself imports it, so the host and the
device attribute time with the same code.

Each bundled model is a *context*: the entry being priced sits between context nodes whose names contain
``ctx_pre`` / ``ctx_post`` (1x1 convs that give the entry realistic neighbours). The runner times the model
with ONNX Runtime's profiler, reads ORT's optimised graph (with a minimal protobuf reader, below) and charges the
entry with every node that is not a context node and not a layout conversion at the graph's boundary: so the
entry's cost includes the layout reorders it causes inside a network, but not the per-run overhead or the
reorders of the context's own inputs and outputs.

Usage on the device:  python3 runner.py BUNDLE_DIR [--out results.csv] [--threads N] [--providers P1,P2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

FORMAT = "hnanas-profile-results/1"


# ----------------------------------------------------------------------------- minimal ONNX protobuf reader
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of a protobuf message; value is bytes for length-delimited."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:  # groups (3, 4) are not used by ONNX
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def read_graph(model_bytes: bytes) -> dict:
    """Nodes (name, op_type, domain, inputs, outputs) and graph input/output names of an ONNX model."""
    graph = next((v for f, w, v in _fields(model_bytes) if f == 7 and w == 2), b"")
    nodes, inputs, outputs = [], [], []
    for f, w, v in _fields(graph):
        if w != 2:
            continue
        if f == 1:  # NodeProto: input=1, output=2, name=3, op_type=4, domain=7
            node = {"inputs": [], "outputs": [], "name": "", "op_type": "", "domain": ""}
            for nf, nw, nv in _fields(v):
                if nw != 2:
                    continue
                if nf == 1:
                    node["inputs"].append(nv.decode())
                elif nf == 2:
                    node["outputs"].append(nv.decode())
                elif nf == 3:
                    node["name"] = nv.decode()
                elif nf == 4:
                    node["op_type"] = nv.decode()
                elif nf == 7:
                    node["domain"] = nv.decode()
            nodes.append(node)
        elif f in (11, 12):  # ValueInfoProto: name=1
            name = next((vv.decode() for ff, ww, vv in _fields(v) if ff == 1 and ww == 2), "")
            (inputs if f == 11 else outputs).append(name)
    return {"nodes": nodes, "inputs": inputs, "outputs": outputs}


# ----------------------------------------------------------------------------------------------- attribution
NCHWC_DOMAIN = "com.microsoft.nchwc"


def _is_ctx(node: dict) -> bool:
    """Context nodes: the ``ctx_pre``/``ctx_post`` convs (ORT may rename a node after its output). Layout
    conversions are never context by name: ORT gives a ReorderOutput the original name of the tensor it
    converts, which may be a context conv's output; where a conversion sits decides what it is."""
    if node["op_type"].startswith("Reorder"):
        return False
    return any("ctx_pre" in s or "ctx_post" in s for s in [node["name"]] + node["outputs"])


def tensor_layouts(graph: dict) -> dict:
    """Memory layout ("nchw" or "nchwc") of every tensor of an ORT-optimised graph: graph inputs are NCHW,
    ReorderInput and NCHWc-domain kernels produce NCHWc, ReorderOutput produces NCHW, and other nodes (Concat,
    Add, ... running on whatever they get) keep the layout of their first input."""
    layout = {name: "nchw" for name in graph["inputs"]}
    for node in graph["nodes"]:  # ORT serialises optimised graphs in topological order
        if node["op_type"] == "ReorderOutput":
            out = "nchw"
        elif node["op_type"] == "ReorderInput" or node["domain"] == NCHWC_DOMAIN:
            out = "nchwc"
        else:
            out = next((layout[i] for i in node["inputs"] if i in layout), "nchw")
        for o in node["outputs"]:
            layout[o] = out
    return layout


def classify_nodes(graph: dict) -> dict:
    """Split an optimised context graph into: ``context`` (ctx convs and reorders at the graph's inputs/outputs),
    ``reorder_in`` (layout conversions between the context's inputs and the entry), ``reorder_out`` (between the
    entry and the context's output), and ``entry`` (everything else, the entry's own kernels and any conversion
    inside it). Also the entry's input and output layouts."""
    nodes = graph["nodes"]
    producer = {o: n for n in nodes for o in n["outputs"]}
    consumers: dict = {}
    for n in nodes:
        for i in n["inputs"]:
            consumers.setdefault(i, []).append(n)
    ins, outs = set(graph["inputs"]), set(graph["outputs"])
    layout = tensor_layouts(graph)
    cls: dict = {}
    for n in nodes:
        if _is_ctx(n):
            cls[n["name"]] = "context"
    for n in nodes:
        if n["name"] in cls or not n["op_type"].startswith("Reorder"):
            continue
        src = producer.get(n["inputs"][0])
        dsts = [d for o in n["outputs"] for d in consumers.get(o, [])]
        if set(n["inputs"]) & ins or set(n["outputs"]) & outs:
            cls[n["name"]] = "context"
        elif src is not None and _is_ctx(src):
            cls[n["name"]] = "reorder_in"
        elif dsts and all(_is_ctx(d) for d in dsts):
            cls[n["name"]] = "reorder_out"
    for n in nodes:
        cls.setdefault(n["name"], "entry")
    entry_nodes = [n for n in nodes if cls[n["name"]] == "entry"]
    in_layout = out_layout = ""
    for n in entry_nodes:
        for i in n["inputs"]:
            src = producer.get(i)
            if i in ins or (src is not None and cls[src["name"]] in ("context", "reorder_in")):
                in_layout = in_layout or layout.get(i, "nchw")
        for o in n["outputs"]:
            dsts = consumers.get(o, [])
            if o in outs or any(cls[d["name"]] in ("context", "reorder_out") for d in dsts):
                out_layout = layout.get(o, "nchw")
    return {"class": cls, "in_layout": in_layout, "out_layout": out_layout}


def _session(model_path: str, providers: list, threads: int, opt_level: str, profile_prefix: str | None,
             optimized_path: str | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return ort.InferenceSession(model_path, so, providers=providers)


def _feeds(session, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([d if isinstance(d, int) and d > 0 else 1 for d in i.shape])
            .astype(np.float32) for i in session.get_inputs()}


def _stats(samples: list) -> dict:
    a = np.asarray(samples, dtype=np.float64)
    return {"median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)),
            "p90_ms": float(np.percentile(a, 90)), "n": int(a.size)}


def profile_entry(model_path: str, providers: list, threads: int = 1, opt_level: str = "all", warmup: int = 2,
                  runs: int = 5, min_time_s: float = 0.0, sessions: int = 1, more_sessions_above_ms: float = 0.5
                  ) -> dict:
    """Time the entry inside a context model from ONNX Runtime's per-node profile (for providers that report every
    node, e.g. the CPU EP), over up to ``sessions`` fresh sessions (session-to-session spread is larger than
    run-to-run spread); sessions after the first run only for entries of at least ``more_sessions_above_ms``
    (small entries are many, their errors average out in a network, and they dominate the profiling time). Returns, in ms: the entry's own time per run (median/p10/p90 over runs of all sessions, and the
    median of per-session medians as ``median_ms``), the boundary layout conversions ``reorder_in_ms`` /
    ``reorder_out_ms``, the entry's input/output layouts, and the number of nodes charged to it."""
    per_session, entry_runs, rin_runs, rout_runs = [], [], [], []
    info: dict = {}
    for s in range(sessions):
        if s > 0 and per_session[0] < more_sessions_above_ms:
            break
        workdir = tempfile.mkdtemp(prefix="hnanas-prof-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        optimized = os.path.join(workdir, "optimized.onnx")
        try:
            sess = _session(model_path, providers, threads, opt_level, os.path.join(workdir, "trace"), optimized)
            feeds = _feeds(sess, seed=s)
            for _ in range(warmup):
                sess.run(None, feeds)
            n_runs, t0 = 0, time.perf_counter()
            while n_runs < runs or (time.perf_counter() - t0 < min_time_s and n_runs < 1000):
                sess.run(None, feeds)
                n_runs += 1
            with open(sess.end_profiling(), encoding="utf-8") as f:
                events = json.load(f)
            with open(optimized, "rb") as f:
                graph = read_graph(f.read())
        finally:
            for name in os.listdir(workdir):
                os.remove(os.path.join(workdir, name))
            os.rmdir(workdir)
        info = classify_nodes(graph)
        cls = info["class"]
        spans = [(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run"][warmup:]
        nodes = sorted((e for e in events if e.get("cat") == "Node"), key=lambda e: e["ts"])
        session_entry = []
        k = 0
        for lo, hi in spans:
            acc = {"entry": 0.0, "reorder_in": 0.0, "reorder_out": 0.0, "context": 0.0}
            while k < len(nodes) and nodes[k]["ts"] < lo:
                k += 1
            while k < len(nodes) and nodes[k]["ts"] <= hi:
                name = nodes[k]["name"].rsplit("_kernel_time", 1)[0]
                acc[cls.get(name, "entry")] += nodes[k]["dur"] / 1e3
                k += 1
            session_entry.append(acc["entry"])
            rin_runs.append(acc["reorder_in"])
            rout_runs.append(acc["reorder_out"])
        entry_runs += session_entry
        per_session.append(float(np.median(session_entry)))
    out = _stats(entry_runs)
    out.update(median_ms=float(np.median(per_session)), session_ms=per_session, method="profile",
               reorder_in_ms=float(np.median(rin_runs)), reorder_out_ms=float(np.median(rout_runs)),
               in_layout=info["in_layout"], out_layout=info["out_layout"],
               nodes=sum(c == "entry" for c in info["class"].values()))
    return out


def time_model(model_path: str, providers: list, threads: int = 1, opt_level: str = "all", warmup: int = 3,
               runs: int = 10, min_time_s: float = 0.0) -> dict:
    """End-to-end time of a model per ``run()`` (for providers without per-node times, e.g. CUDA, TensorRT)."""
    sess = _session(model_path, providers, threads, opt_level, None, None)
    feeds = _feeds(sess)
    outputs = [o.name for o in sess.get_outputs()]
    for _ in range(warmup):
        sess.run(outputs, feeds)
    samples, t_start = [], time.perf_counter()
    while len(samples) < runs or time.perf_counter() - t_start < min_time_s:
        t0 = time.perf_counter()
        sess.run(outputs, feeds)
        samples.append((time.perf_counter() - t0) * 1e3)
    out = _stats(samples)
    out.update(method="e2e", providers=list(sess.get_providers()))
    return out


# --------------------------------------------------------------------------------------------- bundle runner
DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "edge-cpu": ["CPUExecutionProvider"],
    "gpu": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "jetson": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
RESULT_COLUMNS = ["id", "kind", "name", "c_in", "c_out", "h", "w", "stride", "parts", "median_ms", "p10_ms",
                  "p90_ms", "n", "in_layout", "out_layout", "nodes", "method"]


def _providers(names: list, fp16: bool, cache_dir: str) -> list:
    out = []
    for p in names:
        if p == "TensorrtExecutionProvider":
            out.append((p, {"trt_fp16_enable": bool(fp16), "trt_engine_cache_enable": True,
                            "trt_engine_cache_path": cache_dir}))
        else:
            out.append(p)
    return out


def _read_done(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def _write_rows(path: str, rows: list) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def run_bundle(bundle: str, out: str, threads: int | None = None, providers: list | None = None,
               method: str = "auto", fp16: bool | None = None) -> None:
    """Measure every entry and network of an unpacked bundle; resumable (rows already in ``out`` are kept)."""
    import onnxruntime as ort

    with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    threads = int(threads or manifest["threads"])
    fp16 = manifest.get("fp16", False) if fp16 is None else fp16
    names = providers or DEVICE_PROVIDERS[manifest["device"]]
    cache = os.path.join(bundle, "trt_cache")
    os.makedirs(cache, exist_ok=True)
    prov = _providers(names, fp16, cache)
    if method == "auto":
        method = "profile" if names[0] == "CPUExecutionProvider" else "e2e"
    m = manifest["measurement"]
    done = _read_done(out)
    rows = list(done.values())
    done_ids = set(done) | {i[:-1] for i, r in done.items() if r.get("kind") == "reorder"}
    todo = [e for e in manifest["entries"] + manifest["networks"] if e["id"] not in done_ids]
    t0 = time.time()
    for k, item in enumerate(todo):
        path = os.path.join(bundle, item["model"])
        if item["kind"] == "network":
            r = time_model(path, prov, threads, m["opt_level"], 3, 10, 0.5)
            r2 = [time_model(path, prov, threads, m["opt_level"], 3, 10, 0.5)["median_ms"] for _ in range(2)]
            r["median_ms"] = float(np.median([r["median_ms"]] + r2))
            new = [{**item, **r}]
        elif item["kind"] == "identity" and method == "profile":
            continue  # only the end-to-end method subtracts identity contexts
        elif method == "profile":
            r = profile_entry(path, prov, threads, m["opt_level"], m["warmup"], m["runs"], m["min_time_s"],
                              m["sessions"])
            if item["kind"] == "reorder":
                new = [{**item, "id": item["id"] + suffix, "name": f"to_{lay}", "median_ms": r[key],
                        "p10_ms": r[key], "p90_ms": r[key], "n": r["n"], "method": "profile"}
                       for suffix, lay, key in (("a", "nchw", "reorder_in_ms"), ("b", "nchwc", "reorder_out_ms"))]
            else:
                new = [{**item, **r}]
        else:  # whole-model timing minus the context around the entry (see hnanas docs: approximate)
            r = time_model(path, prov, threads, m["opt_level"], m["warmup"], max(m["runs"], 10), m["min_time_s"])
            new = [{**item, **r}]
        rows += new
        if time.time() - t0 > 10 or k == len(todo) - 1:
            _write_rows(out, rows)
            t0 = time.time()
        print(f"\r{len(rows)} rows ({k + 1}/{len(todo)} models)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    _write_rows(out, rows)
    info = {"format": FORMAT, "bundle": manifest["format"], "space": manifest["space"],
            "space_hash": manifest["space_hash"], "device": manifest["device"], "threads": threads,
            "providers": names, "fp16": fp16, "method": method, "graph_optimization_level": m["opt_level"],
            "onnxruntime": ort.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "host": platform.node(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(os.path.splitext(out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure an hnanas profiling bundle with ONNX Runtime.")
    parser.add_argument("bundle", help="the unpacked bundle folder (with manifest.json)")
    parser.add_argument("--out", default="results.csv", help="result CSV (a JSON with device facts goes beside)")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: the bundle's)")
    parser.add_argument("--providers", help="comma-separated execution providers (default: the device's)")
    parser.add_argument("--method", choices=["auto", "profile", "e2e"], default="auto",
                        help="profile: per-node times (CPU EP); e2e: whole-model times (CUDA/TensorRT)")
    parser.add_argument("--fp16", action="store_true", default=None, help="TensorRT fp16")
    args = parser.parse_args(argv)
    run_bundle(args.bundle, args.out, args.threads, args.providers.split(",") if args.providers else None,
               args.method, args.fp16)
    print(f"wrote {args.out}; copy it (and its .json) back and run: hnanas profile import {args.out} --latency-device ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
