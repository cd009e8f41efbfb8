"""Throughput: rows per second at 1, 4 and 16 rows per forward, and the host share of one call, per model.

The workload: independent rows of one question and its 10 HotpotQA passages cut to 150 tokens
(``max_passage_tokens=150``), the model's default heads. Measured after one warm-up, in ``--rounds`` interleaved
rounds (medians), so background load hits every configuration alike:

* **rows/s**: ``QRHeadScorer.score_batch(rows, rows_per_forward=n)`` over the same ``--rows`` rows, for each n;
  the rankings of ``rank_batch`` at the largest n are compared with ``rank`` row by row (``rankings_identical``).
* **the ceiling**: rows/s of the model's own truncated forward, nothing recorded, one row's ids repeated at the
  first and the largest size (no padding): what batching can gain on this device at all.
* **host share** of a ``score`` call: the time outside the model forward (``capture.run_layers``) over the
  call's time — tokenising, assembling the prompt, collecting and scoring the captured heads.

    python benchmarks/bench_throughput.py --json reports/bench_throughput.json --markdown reports/bench_throughput.md
    # a lent GPU (weights cannot travel): random weights of the same architectures, bf16
    python benchmarks/bench_throughput.py --device cuda --random-weights FOLDER --rows 64
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch
from _report import write_reports
from bench_engine import random_weights_scorer

from qrhead_integrations import QRHeadScorer, capture
from qrhead_integrations.models import resolve_device
from qrhead_integrations.prompt import PromptBuilder, to_passages

REPO = Path(__file__).resolve().parents[1]
HOTPOTQA = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"
DEMO = REPO / "examples" / "data" / "hotpotqa_sample.jsonl"
PASSAGE_TOKENS = 150


def _rows(count: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """``count`` real (question, passages) rows: HotpotQA dev rows from 0 (repeated if the file is short)."""
    path = HOTPOTQA if HOTPOTQA.is_file() else DEMO
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        (row["question"], [(p["title"], p["text"]) for p in row["passages"]])
        for row in (lines[i % len(lines)] for i in range(count))
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _interleaved_rates(
    label: str,
    device: torch.device,
    sizes: list[int],
    rounds: int,
    run: Callable[[int], int],
    warm_up: Callable[[], object],
) -> dict[int, dict[str, float]]:
    """Median rows/s of ``run(n)`` (which does its work ``n`` rows per forward and returns how many rows it did)
    at each size, after ``warm_up()``, in interleaved rounds so background load hits every size."""
    warm_up()
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            started = time.perf_counter()
            done = run(n)
            _sync(device)
            samples[n].append(done / (time.perf_counter() - started))
            print(f"  {label}, {n} rows per forward: {samples[n][-1]:.2f} rows/s", flush=True)
    return {n: {"rows_per_s": statistics.median(v), "runs": len(v)} for n, v in samples.items()}


def _rows_per_second(
    scorer: QRHeadScorer, rows: list[Any], sizes: list[int], rounds: int
) -> dict[int, dict[str, float]]:
    """Median rows/s of ``score_batch`` at each rows-per-forward size, interleaved rounds."""

    def run(n: int) -> int:
        scorer.score_batch(rows, rows_per_forward=n)
        return len(rows)

    def warm_up() -> None:
        scorer.score_batch(rows[: max(sizes)], rows_per_forward=max(sizes))

    return _interleaved_rates("score_batch", scorer.device, sizes, rounds, run, warm_up)


def _bare_rows_per_second(
    scorer: QRHeadScorer, rows: list[Any], sizes: list[int], rounds: int
) -> dict[int, dict[str, float]]:
    """The ceiling batching can reach here: rows/s of the model's own truncated forward, nothing recorded.

    ``n`` copies of one row's packed prompt ids (equal lengths: no padding, plain causal attention) per forward,
    to the same depth as the scorer's, over ``len(rows)`` rows. What this gains from 1 to 16 rows per forward bounds
    what ``score_batch`` can gain on this device.
    """
    ids = _prompt_ids(PromptBuilder(scorer.tokenizer, scorer.config.layout), rows[0])
    stop = scorer.heads.deepest_layer

    def run(n: int) -> int:
        with torch.inference_mode():
            for _ in range(len(rows) // n):
                capture.run_layers(scorer.model, [ids] * n, capture.new_cache(scorer.model), start=0, stop_after=stop)
        return (len(rows) // n) * n

    return _interleaved_rates("bare forward", scorer.device, sizes, rounds, run, lambda: run(max(sizes)))


def _prompt_ids(builder: PromptBuilder, row: tuple[str, list[tuple[str, str]]]) -> list[int]:
    """The ids one packed forward reads for ``row``: the prefix (passages cut as the scorer cuts them), then the
    query's and the "N/A" query's tails."""
    query, passages = row
    encoded = builder.encode(builder.truncate_many(to_passages(passages), PASSAGE_TOKENS), [query, "N/A"])
    return encoded.prefix_ids + [token for tail in encoded.tails for token in tail]


def _host_share(scorer: QRHeadScorer, rows: list[Any], rounds: int) -> dict[str, float]:
    """Median seconds of a ``score`` call, of its forward, and the host share (the rest over the call)."""
    device = scorer.device
    forward = [0.0]
    original = capture.run_layers

    def timed(*args: Any, **kwargs: Any) -> None:
        _sync(device)
        started = time.perf_counter()
        original(*args, **kwargs)
        _sync(device)
        forward[0] += time.perf_counter() - started

    calls: list[tuple[float, float]] = []
    capture.run_layers = timed  # type: ignore[assignment]
    try:
        scorer.score(*rows[0])  # warm-up
        for _ in range(rounds):
            for query, passages in rows:
                forward[0] = 0.0
                _sync(device)
                started = time.perf_counter()
                scorer.score(query, passages)
                _sync(device)
                calls.append((time.perf_counter() - started, forward[0]))
    finally:
        capture.run_layers = original  # type: ignore[assignment]
    host = [total - fwd for total, fwd in calls]
    return {
        "call_seconds": statistics.median(total for total, _ in calls),
        "forward_seconds": statistics.median(fwd for _, fwd in calls),
        "host_seconds": statistics.median(host),
        "host_share": statistics.median(h / total for h, (total, _) in zip(host, calls, strict=True)),
        "calls": len(calls),
    }


def _same_rankings(scorer: QRHeadScorer, rows: list[Any], rows_per_forward: int) -> bool:
    batched = scorer.rank_batch(rows, rows_per_forward=rows_per_forward)
    return all(
        [r.index for r in many] == [r.index for r in scorer.rank(query, passages)]
        for (query, passages), many in zip(rows, batched, strict=True)
    )


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    config = {"max_passage_tokens": PASSAGE_TOKENS}
    if args.random_weights is not None:
        scorer = random_weights_scorer(name, args.random_weights, args.device, args.dtype).with_config(**config)
    else:
        scorer = QRHeadScorer.from_pretrained(name, device=args.device, dtype=args.dtype, **config)
    rows = _rows(args.rows)
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"{name}: {len(rows)} rows, {len(rows[0][1])} passages each, heads {scorer.heads}", flush=True)
    throughput = _rows_per_second(scorer, rows, sizes, args.rounds)
    bare = _bare_rows_per_second(scorer, rows, [sizes[0], sizes[-1]], args.rounds)
    host = _host_share(scorer, rows[: args.host_rows], args.rounds)
    builder = PromptBuilder(scorer.tokenizer, scorer.config.layout)
    tokens = [len(_prompt_ids(builder, row)) for row in rows]
    base = throughput[sizes[0]]["rows_per_s"]
    return {
        "heads": str(scorer.heads),
        "dtype": str(scorer.model.dtype).removeprefix("torch."),
        "random_weights": args.random_weights is not None,
        "rows": len(rows),
        "tokens_per_row_median": statistics.median(tokens),
        "rows_per_forward": {str(n): v for n, v in throughput.items()},
        "speedup_over_one_row": {str(n): v["rows_per_s"] / base for n, v in throughput.items()},
        "bare_forward_rows_per_forward": {str(n): v for n, v in bare.items()},
        "bare_forward_speedup": bare[sizes[-1]]["rows_per_s"] / bare[sizes[0]]["rows_per_s"],
        "host": host,
        "rankings_identical": _same_rankings(scorer, rows, max(sizes)),
    }


def _bare_ratio(model: dict[str, Any]) -> str:
    ratio = model.get("bare_forward_speedup")  # absent from reports written before it was added
    return "—" if ratio is None else f"{ratio:.2f}x"


def _markdown(report: dict[str, Any]) -> str:
    info = report["info"]
    sizes = list(next(iter(report["models"].values()))["rows_per_forward"])
    lines = [
        "# Throughput benchmark",
        "",
        f"Command: `{info['command']}`  ",
        f"Machine: {info['machine']}, torch {info['torch']}, {info['threads']} threads, device {info['device']}",
        "",
        "Rows of one HotpotQA question and its 10 passages cut to 150 tokens; `score_batch` over the same rows at "
        "each rows-per-forward size (median of interleaved rounds); bare forward = the model's own truncated "
        "forward, nothing recorded, one row's ids repeated (no padding): the most batching can gain here; host "
        "share = time outside the model forward over a `score` call's time.",
        "",
        f"| model | tokens/row | rows/s at {' / '.join(sizes)} per forward | {sizes[-1]} over {sizes[0]} "
        f"| bare forward {sizes[-1]} over {sizes[0]} "
        "| host ms (share of a call) | rankings identical |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, model in report["models"].items():
        label = f"{name} (random weights, {model['dtype']})" if model["random_weights"] else name
        rates = " / ".join(f"{v['rows_per_s']:.2f}" for v in model["rows_per_forward"].values())
        last = list(model["speedup_over_one_row"].values())[-1]
        host = model["host"]
        lines.append(
            f"| {label} | {model['tokens_per_row_median']:.0f} | {rates} | {last:.2f}x | {_bare_ratio(model)} "
            f"| {1000 * host['host_seconds']:.1f} ({host['host_share']:.2%}) | {model['rankings_identical']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="bundled model name (repeatable; default SmolLM2)")
    parser.add_argument("--rows", type=int, default=32, help="rows per measurement")
    parser.add_argument("--sizes", default="1,4,16", help="rows per forward to compare (first = the baseline)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--host-rows", type=int, default=8, help="rows per round of the host-share measurement")
    parser.add_argument("--device", help="cpu, cuda, mps (default: automatic)")
    parser.add_argument("--dtype", help="float32, bfloat16, float16 (default: the library's choice)")
    parser.add_argument("--random-weights", type=Path, help="as in bench_engine.py: random weights of each model")
    parser.add_argument("--json", type=Path, help="write the report as JSON")
    parser.add_argument("--markdown", type=Path, help="write the report as Markdown")
    args = parser.parse_args()
    models = args.model or ["smollm2-135m-instruct"]
    device = resolve_device(args.device)
    options = " ".join(
        f"--{k.replace('_', '-')} {v}"
        for k, v in vars(args).items()
        if v is not None and k not in ("json", "markdown", "model")
    )
    report: dict[str, Any] = {
        "info": {
            "command": "python benchmarks/bench_throughput.py "
            + " ".join(f"--model {m}" for m in models)
            + " "
            + options,
            "machine": f"{platform.machine()}, {psutil.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "date": time.strftime("%Y-%m-%d"),
        },
        "models": {},
    }
    for name in models:
        report["models"][name] = bench_model(name, args)
    first = report["models"][models[0]]
    sizes = list(first["speedup_over_one_row"])
    report["host_share"] = first["host"]["host_share"]
    report["rows_per_s_16_over_1"] = first["speedup_over_one_row"].get("16", first["speedup_over_one_row"][sizes[-1]])
    report["bare_forward_largest_over_first"] = first["bare_forward_speedup"]
    write_reports(report, _markdown(report), args.json, args.markdown)
    print(_markdown(report))


if __name__ == "__main__":
    main()
