"""Re-ranking speed on the CPU float32 vs bf16 vs int8 weights vs the shallow ``fast`` heads, in one run.

Per bundled model, configurations of ``QRHeadScorer.from_pretrained``: ``fp32`` (``dtype="float32"``, the default
heads), ``bf16`` (``dtype="bfloat16"``: a CPU with AMX runs bf16 matrix products in hardware),
``int8`` (``quantize="int8"``), ``fast`` (``heads="fast"``, the depth-budgeted set of
``research/study_depth.py``), ``bf16+fast``, ``int8+fast``, ``cut96``, ``fast+cut96`` and ``cut64`` (passages
cut to 96 or 64 tokens instead of 128; the workload's cut shrinks in proportion) — ``--config`` picks some,
``--dtype float32`` the ones a CPU without AMX runs; ``fp32`` always runs, as the reference. For each:

* **seconds per query** on the re-ranking workload: a real SciFact query with BM25's top 20 passages cut to 256
  tokens (``--queries`` of them), every configuration once per round, rounds interleaved, median;
* **peak memory**: resident memory added by loading the model, and the peak growth during one query;
* **dev quality** at the product's defaults (128-token cut, default fusion, as the adapters run it): HotpotQA dev
  rows 60-99 (recall@2, candidates in a seeded random order; rows 0-59 chose the ``fast`` set) and the first
  ``--scifact`` SciFact dev queries with a judged document in BM25's top 20 (nDCG@10, BM25 order) — dev data,
  disjoint from the evaluation rows of docs/results.md — and each configuration's difference from ``fp32``.

``speedup_best_over_fp32`` is the largest speed-up among configurations within ``--tolerance`` (0.01) of fp32's
quality on both tasks (``null`` when none is); ``speedup_max_over_fp32`` ignores quality.

``--threads`` measures instead how torch's thread count fares on a shared machine: seconds per query of the
default configuration (float32, the product's 128-token cut, SciFact dev queries with BM25's top 20) with torch's
default threads (every core the process may use) and with one thread, **alone** and **beside a busy process** —
a second torch job with its own default threads, and a single-threaded Python loop (a test run, a tokenizer) —
rounds interleaved, medians. The neighbour starts before and stops after each cell.

    python benchmarks/bench_rerank.py --json reports/bench_rerank.json --markdown reports/bench_rerank.md
    python benchmarks/bench_rerank.py --dtype float32 --model qwen2.5-coder-0.5b-instruct   # a CPU without AMX
    python benchmarks/bench_rerank.py --threads --model qwen2.5-coder-0.5b-instruct --json reports/bench_threads.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import torch
from _memory import PeakMemory
from _report import write_reports

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.detect import ranking_metric
from qrhead_integrations.evaluation import MultihopExample, beir_candidates, read_beir, read_multihop_jsonl
from qrhead_integrations.evaluation.runner import prompt_order
from qrhead_integrations.models import cpu_has_amx_bf16
from qrhead_integrations.presets import get_preset

REPO = Path(__file__).resolve().parents[1]
HOTPOTQA = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
MODELS = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct")
# Load options (one model load per distinct pair) and head set of each configuration.
CONFIGS: dict[str, dict[str, Any]] = {
    "fp32": {"dtype": "float32"},
    "bf16": {"dtype": "bfloat16"},
    "int8": {"dtype": "float32", "quantize": "int8"},
    "fast": {"dtype": "float32", "heads": "fast"},
    "bf16+fast": {"dtype": "bfloat16", "heads": "fast"},
    "int8+fast": {"dtype": "float32", "quantize": "int8", "heads": "fast"},
    "cut96": {"dtype": "float32", "cut": 96},
    "fast+cut96": {"dtype": "float32", "heads": "fast", "cut": 96},
    "cut64": {"dtype": "float32", "cut": 64},
}
DEFAULT_CUT = 128
"""The product's passage cut; a configuration's ``cut`` replaces it (quality) and scales the workload's (speed)."""
WORKLOAD_TOKENS = 256
CPU = torch.device("cpu")


def dev_rows(hotpotqa: int) -> tuple[list[MultihopExample], list[MultihopExample]]:
    """The dev rows (the defaults study's dev slices, ``research/study_cache.py``): HotpotQA rows 60 to
    ``59 + hotpotqa``, and the SciFact train queries at positions 0-99 with a judged document in BM25's top 20."""
    rows = read_multihop_jsonl(HOTPOTQA, limit=100)[60 : 60 + hotpotqa]
    return rows, beir_candidates(read_beir(SCIFACT, split="train"), top_k=20, start=0, limit=100)


def quality(scorer: QRHeadScorer, hotpotqa: list[MultihopExample], scifact: list[MultihopExample]) -> dict[str, float]:
    """Dev figures at the product's defaults: recall@2 on HotpotQA (seeded random order), nDCG@10 on SciFact."""
    recall = []
    for example in hotpotqa:
        perm = prompt_order(len(example.passages), "shuffled", key=example.id)
        ranked = scorer.rank(example.question, [example.passages[i] for i in perm])
        scores = [0.0] * len(perm)
        for item in ranked:
            scores[perm[item.index]] = item.score
        recall.append(ranking_metric(scores, tuple(example.gold), "recall@2"))
    ndcg = []
    for example in scifact:
        ranked = scorer.rank(example.question, example.passages)
        scores = [0.0] * len(example.passages)
        for item in ranked:
            scores[item.index] = item.score
        ndcg.append(ranking_metric(scores, tuple(example.gold), "ndcg@10"))
    return {"hotpotqa_recall@2": statistics.fmean(recall), "scifact_ndcg@10": statistics.fmean(ndcg)}


def bench_model(model: str, args: argparse.Namespace) -> dict[str, Any]:
    if get_preset(model, "fast") is None:
        raise SystemExit(f"{model} has no 'fast' preset: run research/study_depth.py --write-preset first")
    hotpotqa, rerank = dev_rows(args.hotpotqa)
    scifact = rerank[: args.scifact]
    workload = rerank[args.scifact : args.scifact + args.queries]  # not the quality queries
    wanted = args.config or [name for name in CONFIGS if args.dtype is None or CONFIGS[name]["dtype"] == args.dtype]
    chosen = ["fp32", *(name for name in CONFIGS if name != "fp32" and name in wanted)]
    loaded: dict[str, QRHeadScorer] = {}
    load_mib: dict[str, float] = {}
    loads = {(CONFIGS[name]["dtype"], CONFIGS[name].get("quantize")) for name in chosen}
    for dtype, quantize in sorted(loads, key=str):
        with PeakMemory(CPU) as mem:
            base = QRHeadScorer.from_pretrained(model, dtype=dtype, quantize=quantize)
        for name in chosen:
            options = CONFIGS[name]
            if (options["dtype"], options.get("quantize")) == (dtype, quantize):
                scorer = base.with_heads(options["heads"]) if "heads" in options else base
                loaded[name] = scorer.with_config(max_passage_tokens=options.get("cut", DEFAULT_CUT))
                load_mib[name] = mem.peak_bytes / 2**20
    loaded = {name: loaded[name] for name in chosen}
    rows: dict[str, dict[str, Any]] = {}
    for name, scorer in loaded.items():
        figures = quality(scorer, hotpotqa, scifact)
        rows[name] = {**figures, "load_mib": load_mib[name]}
        print(f"{model} {name}: {figures}", flush=True)
    timed = {
        name: scorer.with_config(
            max_passage_tokens=WORKLOAD_TOKENS * CONFIGS[name].get("cut", DEFAULT_CUT) // DEFAULT_CUT
        )
        for name, scorer in loaded.items()
    }
    for scorer in timed.values():
        scorer.rank(workload[0].question, workload[0].passages)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in timed}
    peaks: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(args.rounds):
        for name, scorer in timed.items():
            with PeakMemory(CPU) as mem:
                started = time.perf_counter()
                for example in workload:
                    scorer.rank(example.question, example.passages)
                elapsed = time.perf_counter() - started
            seconds[name].append(elapsed / len(workload))
            peaks[name].append(mem.peak_bytes / 2**20)
    for name in rows:
        rows[name]["seconds"] = statistics.median(seconds[name])
        rows[name]["peak_query_mib"] = max(peaks[name])
        rows[name]["deepest_layer"] = max(layer for layer, _ in loaded[name].heads) + 1
    fp32 = rows["fp32"]
    for row in rows.values():
        row["speedup"] = fp32["seconds"] / row["seconds"]
        row["delta_hotpotqa_recall@2"] = row["hotpotqa_recall@2"] - fp32["hotpotqa_recall@2"]
        row["delta_scifact_ndcg@10"] = row["scifact_ndcg@10"] - fp32["scifact_ndcg@10"]
        row["within_tolerance"] = (
            row["delta_hotpotqa_recall@2"] >= -args.tolerance and row["delta_scifact_ndcg@10"] >= -args.tolerance
        )
    qualified = [row["speedup"] for name, row in rows.items() if name != "fp32" and row["within_tolerance"]]
    return {
        "rows": rows,
        "speedup_best_over_fp32": max(qualified) if qualified else None,
        "speedup_max_over_fp32": max(row["speedup"] for row in rows.values()),
        "counts": {"hotpotqa": len(hotpotqa), "scifact": len(scifact), "workload_queries": len(workload)},
        "fast_heads": str(get_preset(model, "fast")),
    }


NEIGHBOURS = {
    "alone": None,
    "beside a torch job": "import torch\na = torch.randn(1024, 1024)\nwhile True:\n    a @ a",
    "beside a 1-thread loop": "while True:\n    pass",
}
"""The neighbour processes of ``--threads``: nothing, a matrix-product loop with torch's default threads (another
model job), and a pure-Python loop that keeps one core busy."""


def bench_threads(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per query with torch's default threads and with one, alone and beside each neighbour."""
    base = QRHeadScorer.from_pretrained(model, dtype="float32")
    queries = beir_candidates(read_beir(SCIFACT, split="train"), top_k=20, start=0, limit=100)[: args.queries]
    default_threads = torch.get_num_threads()
    # the product's own setting (ScorerConfig.threads), as a user would pass it
    scorers = {t: base.with_config(threads=t) for t in sorted({default_threads, 1}, reverse=True)}
    base.rank(queries[0].question, queries[0].passages)  # warm-up
    neighbours = {name: NEIGHBOURS[name] for name in args.neighbours.split(",")}
    seconds: dict[tuple[str, int], list[float]] = {(n, t): [] for n in neighbours for t in scorers}
    for _ in range(args.rounds):
        for neighbour, code in neighbours.items():
            process = None if code is None else subprocess.Popen([sys.executable, "-c", code])
            try:
                time.sleep(0 if process is None else 2.0)  # the neighbour is running (torch imported) first
                for threads, scorer in scorers.items():
                    started = time.perf_counter()
                    for example in queries:
                        scorer.rank(example.question, example.passages)
                    seconds[(neighbour, threads)].append((time.perf_counter() - started) / len(queries))
            finally:
                if process is not None:
                    process.kill()
                    process.wait()
    rows = [
        {"neighbour": n, "threads": t, "seconds": statistics.median(v), "all_seconds": v}
        for (n, t), v in seconds.items()
    ]
    print(f"{model}: {rows}", flush=True)
    return {"default_threads": default_threads, "queries": len(queries), "rows": rows}


def threads_markdown(report: dict[str, Any]) -> str:
    lines = ["# Torch threads on a shared CPU", "", report["setup"], ""]
    for model, data in report["models"].items():
        settings = sorted({row["threads"] for row in data["rows"]}, reverse=True)
        lines += [
            f"## {model}",
            "",
            "| neighbour | " + " | ".join(f"{t} thread{'s' * (t > 1)} s/query" for t in settings) + " |",
            "|---|" + "---|" * len(settings),
        ]
        for neighbour in dict.fromkeys(row["neighbour"] for row in data["rows"]):
            cells = {row["threads"]: row["seconds"] for row in data["rows"] if row["neighbour"] == neighbour}
            lines.append(f"| {neighbour} | " + " | ".join(f"{cells[t]:.2f}" for t in settings) + " |")
        lines += ["", f"torch's default: {data['default_threads']} threads; {data['queries']} queries per cell.", ""]
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Re-ranking speed: float32, bf16, int8, fast heads", "", report["setup"], ""]
    for model, data in report["models"].items():
        best = data["speedup_best_over_fp32"]
        lines += [
            f"## {model}",
            "",
            "| config | s/query | speed-up | deepest layer | load MiB | peak MiB / query | HotpotQA recall@2 (Δ) "
            "| SciFact nDCG@10 (Δ) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in data["rows"].items():
            lines.append(
                f"| {name} | {row['seconds']:.2f} | {row['speedup']:.2f}x | {row['deepest_layer']} | "
                f"{row['load_mib']:.0f} | {row['peak_query_mib']:.0f} | {row['hotpotqa_recall@2']:.3f} "
                f"({row['delta_hotpotqa_recall@2']:+.3f}) | {row['scifact_ndcg@10']:.3f} "
                f"({row['delta_scifact_ndcg@10']:+.3f}) |"
            )
        lines += [
            "",
            f"Best speed-up within {report['tolerance']} of fp32 on both tasks: "
            + (f"{best:.2f}x" if best else "none")
            + f"; fastest overall {data['speedup_max_over_fp32']:.2f}x. Fast heads: `{data['fast_heads']}`.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help=f"default: {', '.join(MODELS)}")
    parser.add_argument(
        "--config", action="append", choices=list(CONFIGS), help="repeat; default: all (fp32 always runs)"
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        help="only the configurations running in this dtype (float32: the options of a CPU without AMX)",
    )
    parser.add_argument("--queries", type=int, default=3, help="workload queries per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hotpotqa", type=int, default=40, help="HotpotQA dev rows from 60 for quality")
    parser.add_argument("--scifact", type=int, default=20, help="SciFact dev queries for quality")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--threads", action="store_true", help="the threads measurement instead (see above)")
    parser.add_argument(
        "--neighbours", default=",".join(NEIGHBOURS), help=f"with --threads, comma-separated: {', '.join(NEIGHBOURS)}"
    )
    parser.add_argument("--note", default="")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if args.threads:
        setup = (
            f"{platform.machine()}, {psutil.cpu_count()} cores, float32, {args.rounds} interleaved rounds (median "
            "s/query); SciFact dev queries with BM25's top 20 cut to 128 tokens (the product's default). " + args.note
        )
        threads = {"setup": setup.strip(), "models": {m: bench_threads(m, args) for m in args.model or MODELS}}
        write_reports(threads, threads_markdown(threads), json_path=args.json, markdown_path=args.markdown)
        print(threads_markdown(threads))
        return
    setup = (
        f"{platform.machine()}, {psutil.cpu_count()} cores, AMX bf16: {'yes' if cpu_has_amx_bf16() else 'no'}; "
        f"workload: {args.queries} SciFact dev queries x BM25 "
        f"top 20 cut to {WORKLOAD_TOKENS} tokens, {args.rounds} interleaved rounds (median s/query); quality at "
        f"the defaults on HotpotQA dev rows 60-{59 + args.hotpotqa} and {args.scifact} SciFact dev queries. "
        + args.note
    )
    report: dict[str, Any] = {"setup": setup.strip(), "tolerance": args.tolerance, "models": {}}
    for model in args.model or MODELS:
        report["models"][model] = bench_model(model, args)
    write_reports(report, markdown(report), json_path=args.json, markdown_path=args.markdown)
    print(markdown(report))


if __name__ == "__main__":
    main()
