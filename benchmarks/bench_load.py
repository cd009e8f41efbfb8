"""Install and load cost of a bundled model (issue #33): download, cache size, first load, later load, peak memory.

Each load runs in a **fresh process** (what a user's new process pays): the first load converts the GGUF into an
empty cache folder; each later load reads that folder. Figures per load: wall seconds and CPU seconds of the
``load_model`` call (CPU seconds stay comparable on a busy machine, wall seconds do not); the process's peak
resident memory during the load; the time of the first score (one query, two passages, the default heads: a
16-bit cache's layers are cast on first use, so the layers scoring reads are cast here); then one forward through
the whole model, its time and the process's resident memory after it, anonymous and file-backed (a float32 cache is
used in place through a memory map; a 16-bit one is cast into the process's own memory; a mapped file's pages are
read on first use, not during the load). Several code versions
("variants", each a folder that holds a ``qrhead_integrations`` package) are measured in one run, their later
loads interleaved so that a change in the machine's load hits them alike:

    mkdir /tmp/before && git archive <commit> qrhead_integrations | tar -x -C /tmp/before   # the code before
    git rev-parse <commit> > /tmp/before/COMMIT
    taskset -c 1 env OMP_NUM_THREADS=1 python benchmarks/bench_load.py --model smollm2-135m-instruct \\
        --variant before=/tmp/before --variant after=. --cache-root /tmp/bench-load \\
        --json reports/bench_load.json --markdown reports/bench_load.md

``--cache-root`` must not hold the model already (a fresh cache folder per variant and model is made under it).
A run adds its model's rows to an existing ``--json`` report and rewrites the Markdown from all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _report import REPO, write_reports

CHILD = """
import json, sys, time
import torch, transformers
import qrhead_integrations
from qrhead_integrations.models import BUNDLED_MODELS, load_model

def memory():  # MB: peak and current resident set, and the current set's anonymous and file-backed parts
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}

name, cache, dtype = sys.argv[1], sys.argv[2], sys.argv[3]
wall, cpu = time.perf_counter(), time.process_time()
loaded = load_model(name, cache=cache, dtype=None if dtype == "auto" else dtype)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
after_load = memory()
score = time.perf_counter()  # what a user does next: one small query through the default heads
qrhead_integrations.QRHeadScorer(loaded.model, loaded.tokenizer, model_id=loaded.model_id).score(
    "Which city is the capital of France?", ["Paris is the capital of France.", "Berlin lies in Germany."])
score = time.perf_counter() - score
forward = time.perf_counter()
with torch.inference_mode():  # one forward touches every weight: the memory the model holds in use
    loaded.model(torch.tensor([[1, 2, 3, 4]]))
forward = time.perf_counter() - forward
in_use = memory()
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "first_score_s": score, "first_forward_s": forward,
    "peak_rss_mb": after_load["VmHWM"],
    "in_use_mb": in_use["VmRSS"], "in_use_anon_mb": in_use["RssAnon"], "in_use_file_mb": in_use["RssFile"],
    "peak_with_forward_mb": in_use["VmHWM"], "dtypes": sorted({str(p.dtype) for p in loaded.model.parameters()}),
    "threads": torch.get_num_threads(), "package": qrhead_integrations.__file__,
    "gguf_bytes": sum(p.stat().st_size for p in BUNDLED_MODELS[name].find_parts())}))
"""


MEMORY = ("peak_rss_mb", "in_use_mb", "in_use_anon_mb", "in_use_file_mb", "peak_with_forward_mb")


def load_once(variant: Path, model: str, cache: Path, dtype: str) -> dict[str, Any]:
    """One load in a fresh interpreter that imports ``variant``'s package; its figures."""
    env = {**os.environ, "PYTHONPATH": str(variant.resolve())}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, model, str(cache.resolve()), dtype],
        env=env,
        cwd=variant,  # "-c" puts the working folder first on sys.path
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"load failed ({variant}):\n{out.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(figures["package"]).resolve().parents[1] != variant.resolve():
        raise SystemExit(f"{variant}: the child imported {figures['package']}; check PYTHONPATH")
    figures["package"] = str(Path(figures["package"]).resolve().relative_to(variant.resolve()))  # no machine path
    lines = [line for line in out.stderr.replace("\r", "\n").splitlines() if line.strip()]
    bars = [line for line in lines if "it/s]" in line or "s/it]" in line or "%|" in line]
    figures["stderr"] = {"lines": [line for line in lines if line not in bars], "progress_bar_redraws": len(bars)}
    return figures


def commit(folder: Path) -> str:
    """The commit a variant's code comes from: its checkout's HEAD (``+`` if modified), or a ``COMMIT`` file."""
    if (folder / "COMMIT").is_file():
        return (folder / "COMMIT").read_text().strip()
    git = ["git", "-C", str(folder)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "qrhead_integrations"], capture_output=True, text=True)
    return head + ("+" if dirty.stdout.strip() else "")


def cache_bytes(cache: Path) -> dict[str, int]:
    """Bytes in the converted folder: all files, and the weight files alone."""
    files = [item for item in (cache / "models").rglob("*") if item.is_file()]
    weights = sum(item.stat().st_size for item in files if item.suffix == ".safetensors")
    return {"total": sum(item.stat().st_size for item in files), "weights": weights}


def conditions() -> dict[str, Any]:
    """What the machine was doing: pinned cores, threads, load average, CPU."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores_pinned": sorted(os.sched_getaffinity(0)),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Install and load cost of the bundled models",
        "",
        "Fresh process per load; `load_model(name)` at the dtype in the last column; wall / CPU seconds of that call; "
        "then, wall seconds of the first score (one query, two passages, the default heads: the decoder up to the "
        "deepest selected layer) and of a forward through the whole model after it (a memory-mapped file is read, "
        "and a 16-bit cache's layers not yet used are cast, on first use). Memory "
        "of the whole process, imports included: peak resident set during the load, and the resident set in use "
        "after one forward (which touches every weight), split into anonymous memory and file-backed pages "
        "(a memory-mapped cache file). Later loads: median seconds and largest memory over the repeats, page cache "
        "warm. Written by `benchmarks/bench_load.py`.",
        "",
        "| model | variant | download (GGUF) | cache | first load wall / CPU | later load wall / CPU | + first score "
        "| + whole forward "
        "| peak RSS first / later load | later: in use (anon + file) | dtype run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        first, later = row.get("first"), row["later"]
        took = f"{first['wall_s']:.0f} s / {first['cpu_s']:.0f} s" if first else "—"
        first_peak = f"{first['peak_rss_mb'] / 1e3:.2f}" if first else "—"
        score = f"+{later['first_score_s']:.1f} s" if "first_score_s" in later else "—"
        lines.append(
            f"| {row['model']} | {row['variant']} | {row['gguf_bytes'] / 1e6:.0f} MB | "
            f"{row['cache_bytes']['total'] / 1e9:.2f} GB | "
            f"{took} | {later['wall_s']:.1f} s / {later['cpu_s']:.1f} s | {score} | "
            f"+{later['first_forward_s']:.1f} s | "
            f"{first_peak} / {later['peak_rss_mb'] / 1e3:.2f} GB | "
            f"{later['in_use_mb'] / 1e3:.2f} GB ({later['in_use_anon_mb'] / 1e3:.2f} + "
            f"{later['in_use_file_mb'] / 1e3:.2f}) | {later['dtypes']} |"
        )
    lines += [
        "",
        "Code per variant (`+`: that commit with uncommitted changes, the change measured): "
        + ", ".join(
            sorted({f"{r['variant']} {r['code'][:10]}{'+' * r['code'].endswith('+')}" for r in report["rows"]})
        ),
    ]
    lines += ["", "Conditions per run:", ""]
    for run in report["runs"]:
        lines.append(f"- {run['model']}: {json.dumps(run['conditions'])} · `{run['command']}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", action="append", required=True, help="label=folder holding qrhead_integrations")
    parser.add_argument("--cache-root", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3, help="later loads per variant")
    parser.add_argument("--dtype", default="auto", help="load_model's dtype (auto: float32 on a CPU without AMX)")
    parser.add_argument(
        "--later-only", action="store_true", help="reuse the caches of an earlier run under --cache-root"
    )
    parser.add_argument("--label", default="", help="appended to each variant's label in the report")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    variants = {label: Path(folder) for label, folder in (v.split("=", 1) for v in args.variant)}
    caches = {label: args.cache_root / f"{label}-{args.model}" for label in variants}
    for cache in caches.values():
        if (cache / "models").exists() != args.later_only:
            raise SystemExit(f"{cache}: a first load needs an empty cache folder, --later-only a converted one")
    run_conditions = conditions()
    rows: dict[str, dict[str, Any]] = {}
    for label, folder in variants.items():
        rows[label] = {"model": args.model, "variant": label + args.label, "dtype": args.dtype, "code": commit(folder)}
        if not args.later_only:
            first = load_once(folder, args.model, caches[label], args.dtype)
            rows[label]["first"] = first
            print(f"{label}: first load {first['wall_s']:.1f} s wall, {first['cpu_s']:.1f} s CPU", flush=True)
        rows[label]["cache_bytes"] = cache_bytes(caches[label])
    later: dict[str, list[dict[str, Any]]] = {label: [] for label in variants}
    for _ in range(args.repeats):  # interleaved: variant A, B, A, B... against drift in the machine's load
        for label, folder in variants.items():
            later[label].append(load_once(folder, args.model, caches[label], args.dtype))
    for label, loads in later.items():
        rows[label]["gguf_bytes"] = loads[0]["gguf_bytes"]
        rows[label]["later"] = {
            "wall_s": statistics.median(x["wall_s"] for x in loads),
            "cpu_s": statistics.median(x["cpu_s"] for x in loads),
            "first_score_s": statistics.median(x["first_score_s"] for x in loads),
            "first_forward_s": statistics.median(x["first_forward_s"] for x in loads),
            **{key: max(x[key] for x in loads) for key in MEMORY},
            "all_wall_s": [round(x["wall_s"], 3) for x in loads],
            "all_cpu_s": [round(x["cpu_s"], 3) for x in loads],
            "dtypes": ", ".join(loads[0]["dtypes"]).replace("torch.", ""),
        }
        row = rows[label]
        print(
            f"{label}: cache {row['cache_bytes']['total'] / 1e9:.3f} GB, later load {row['later']['wall_s']:.2f} s "
            f"wall / {row['later']['cpu_s']:.2f} s CPU, peak RSS {row['later']['peak_rss_mb']:.0f} MB, in use "
            f"{row['later']['in_use_mb']:.0f} MB (anonymous {row['later']['in_use_anon_mb']:.0f} MB)",
            flush=True,
        )
    report: dict[str, Any] = {"rows": [], "runs": []}
    if args.json is not None and args.json.is_file():
        report = json.loads(args.json.read_text(encoding="utf-8"))
    ours = {(row["model"], row["variant"]) for row in rows.values()}
    report["rows"] = [r for r in report["rows"] if (r["model"], r["variant"]) not in ours] + list(rows.values())
    command = "python " + shlex.join([str(Path(sys.argv[0]).resolve().relative_to(REPO)), *sys.argv[1:]])
    command = command.replace(str(REPO), ".")
    run = {"model": args.model, "conditions": run_conditions, "command": command, "finished": time.strftime("%F %T")}
    report["runs"] = [r for r in report["runs"] if r["command"] != command] + [run]
    places = {str(folder.resolve()): f"<{label}>" for label, folder in variants.items() if folder.resolve() != REPO}
    places[str(args.cache_root.resolve())] = "<cache-root>"
    report = json.loads(portable(json.dumps(report), places))
    write_reports(report, markdown(report), args.json, args.markdown)


def portable(text: str, places: dict[str, str]) -> str:
    """``text`` with this machine's folders (the variants' checkouts, the cache root) named by their role: a
    committed report records no machine path, and its command reads as a recipe (``--variant before=<before>``)."""
    for path, name in sorted(places.items(), key=lambda item: -len(item[0])):
        text = text.replace(path, name)
    return text


if __name__ == "__main__":
    main()
