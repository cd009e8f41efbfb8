"""Peak memory of one scoring call: resident-memory growth per window, bundled models, CPU.

Each (model, length) runs in a **fresh process** (a warm process would reuse the allocator's memory and hide
the first call's growth, which is what a user's process sees): load the scorer, note the resident set, score one
query against real passages filling about ``length`` tokens, and report the peak growth over the loaded state
(sampled every 5 ms) for the first call and for a second, identical call. Prompts longer than the model's
context are scored in windows; the growth is then per window, since windows run one after another.

    python benchmarks/bench_memory.py --json reports/bench_memory.json --markdown reports/bench_memory.md
    python benchmarks/bench_memory.py --case qwen2.5-coder-0.5b-instruct:32768   # one case

``--reader`` measures one model for both jobs instead: the resident memory of a scorer alone, then with a reader
and both frameworks' LLM objects over its own weights (``shared``), against a scorer plus a reader loaded as a
second copy (``copy``) — each mode in a fresh process, after one re-rank and one answer:

    python benchmarks/bench_memory.py --reader --json reports/bench_memory_reader.json \
        --markdown reports/bench_memory_reader.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _report import write_reports

CASES = (
    "smollm2-135m-instruct:2048",
    "smollm2-135m-instruct:8192",
    "qwen2.5-coder-0.5b-instruct:2048",
    "qwen2.5-coder-0.5b-instruct:8192",
    "qwen2.5-coder-0.5b-instruct:32768",
)
QUERY = "In what year did the Danish plant ecologist who assisted the chemist who introduced pH die?"


def child(model: str, length: int) -> dict[str, Any]:
    """Run one case in this process and return its figures (called in a fresh interpreter)."""
    import psutil
    import torch
    from _memory import PeakMemory
    from bench_engine import _corpus

    from qrhead_integrations import QRHeadScorer

    scorer = QRHeadScorer.from_pretrained(model, max_passage_tokens=None)
    corpus = _corpus()
    passages: list[Any] = []
    tokens = 0
    for title, text in corpus * 4:
        if tokens >= length:
            break
        passages.append((title, text))
        tokens += len(scorer.tokenizer(f"{title}\n{text}", add_special_tokens=False)["input_ids"]) + 4
    proc = psutil.Process()
    cpu = torch.device("cpu")

    def peak_growth() -> tuple[float, float]:
        with PeakMemory(cpu) as mem:
            started = time.perf_counter()
            scorer.score(QUERY, passages)
            elapsed = time.perf_counter() - started
        return mem.peak_bytes / 2**30, elapsed

    loaded = proc.memory_info().rss / 2**30
    first, first_s = peak_growth()
    second, second_s = peak_growth()
    windows = max(1, -(-tokens // scorer.context_length))
    return {
        "model": model,
        "tokens": tokens,
        "passages": len(passages),
        "context_length": scorer.context_length,
        "windows": windows,
        "loaded_gib": loaded,
        "first_call_growth_gib": first,
        "second_call_growth_gib": second,
        "first_call_seconds": first_s,
        "second_call_seconds": second_s,
    }


READER_MODELS = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct")
CONTEXT = "Paris is the capital and most populous city of France.\n\nBerlin is the capital of Germany."


def reader_child(model: str, mode: str) -> dict[str, Any]:
    """Resident memory (GiB) of a scorer and a reader over ``model``: ``shared`` weights or a second ``copy``."""
    import psutil

    from qrhead_integrations import QRHeadScorer, Reader

    proc = psutil.Process()
    rss = {"start": proc.memory_info().rss / 2**30}
    scorer = QRHeadScorer.from_pretrained(model, dtype="float32")
    scorer.rank("What is the capital of France?", CONTEXT.split("\n\n"))
    rss["scorer"] = proc.memory_info().rss / 2**30
    if mode == "shared":
        from qrhead_integrations.langchain.llm import chat_model
        from qrhead_integrations.llama_index.llm import huggingface_llm

        reader = Reader.from_scorer(scorer)
        frameworks = (chat_model(scorer), huggingface_llm(scorer))  # kept alive while measured
    else:
        reader = Reader.from_pretrained(model, dtype="float32")
        frameworks = ()
    answer = reader.answer("What is the capital of France?", CONTEXT)
    rss["scorer_and_reader"] = proc.memory_info().rss / 2**30
    return {
        "model": model,
        "mode": mode,
        "rss_gib": {k: round(v, 3) for k, v in rss.items()},
        "peak_rss_gib": round(proc.memory_full_info().rss / 2**30, 3),
        "reader_adds_gib": round(rss["scorer_and_reader"] - rss["scorer"], 3),
        "weights_shared": reader.model is scorer.model,
        "framework_objects": len(frameworks),
        "answer": answer.text,
    }


def reader_report(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# One model for both jobs: resident memory of a scorer and a reader (CPU, float32, fresh process each)",
        "",
        "| model | reader | scorer loaded GiB | scorer + reader GiB | the reader adds GiB |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        what = "shared weights (+ LangChain and LlamaIndex LLMs)" if r["mode"] == "shared" else "a second copy"
        lines.append(
            f"| {r['model']} | {what} | {r['rss_gib']['scorer']:.2f} | {r['rss_gib']['scorer_and_reader']:.2f} | "
            f"{r['reader_adds_gib']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def run_child(argument: str) -> dict[str, Any]:
    """One case in a fresh interpreter (``--child`` or ``--reader-child`` and its case); its figures."""
    done = subprocess.run(
        [sys.executable, __file__, *argument.split()],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent,
    )
    if done.returncode != 0:
        raise SystemExit(f"{argument} failed:\n{done.stderr[-3000:]}")
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", help=f"model:tokens (default: {', '.join(CASES)})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--reader-child", help=argparse.SUPPRESS)
    parser.add_argument("--reader", action="store_true", help="measure a reader sharing the scorer's weights")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if args.reader_child:
        model, mode = args.reader_child.rsplit(":", 1)
        print(json.dumps(reader_child(model, mode)))
        return
    if args.reader:
        rows = [run_child(f"--reader-child {m}:{mode}") for m in READER_MODELS for mode in ("shared", "copy")]
        text = reader_report(rows)
        write_reports({"rows": rows}, text, json_path=args.json, markdown_path=args.markdown)
        print(text)
        return
    if args.child:
        model, length = args.child.rsplit(":", 1)
        print(json.dumps(child(model, int(length))))
        return
    rows = [run_child(f"--child {case}") for case in args.case or CASES]
    lines = [
        "# Peak memory of one scoring call (CPU, float32, fresh process per case)",
        "",
        "| model | tokens | windows | loaded GiB | growth, first call GiB | growth, second call GiB | first call s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['tokens']:,} | {r['windows']} | {r['loaded_gib']:.2f} | "
            f"{r['first_call_growth_gib']:.2f} | {r['second_call_growth_gib']:.2f} | {r['first_call_seconds']:.1f} |"
        )
    write_reports({"rows": rows}, "\n".join(lines) + "\n", json_path=args.json, markdown_path=args.markdown)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
