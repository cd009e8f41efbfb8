r"""Can cached passages rank as well as passages read in context? The study behind the passage cache.

A passage cache encodes each passage once, alone after the prompt's fixed opening, and lets every later query read
it (``qrhead_integrations.parallel``): a query then costs its own few dozen tokens instead of every candidate's.
The catch is that cached passages never saw the other candidates. This script scores the dev queries both ways
from the same cut passages, in the product's prompt order, and keeps every head's calibrated per-passage scores
up to the deepest layer of the model's presets, so that head sets can be re-detected for either layout from the
cache without running the model again:

* ``in_context``: today's scorer (passages numbered and read together);
* ``parallel@T``: the cached layout, the query's logits on passage keys divided by ``T`` (APE's attention
  temperature; ``T = 1`` is plain parallel encoding).

Dev rows (the defaults study's, ``study_cache.dev_examples``): HotpotQA dev rows 0-99 (shuffled layout) and the
SciFact train queries of the ``select`` / ``tune`` positions with a judged document in BM25's top 20 (best-last
layout). ``--report`` reads the caches and writes the tables: the model's default heads on every dev query, alone
and at its default fusion, and heads re-detected in each layout by two-fold cross-validation (detected on one half
of a task's queries with ``select_heads(top_k="auto")``, measured on the other half).

    python research/study_passage_cache.py --model qwen2.5-coder-0.5b-instruct --task multihop
    python research/study_passage_cache.py --model qwen2.5-coder-0.5b-instruct --report \\
        --json research/reports/passage_cache_study.json --markdown research/reports/passage_cache_study.md
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_cache import CACHE, ORDER_NAMES, dev_examples
from study_defaults import (
    PRODUCT_CACHE,
    SHAPES,
    TASKS,
    DevScores,
    default_heads,
    figure,
    first_stage_figure,
    lexical_figure,
)

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.detect import select_heads
from qrhead_integrations.evaluation.runner import prompt_order
from qrhead_integrations.fusion import model_fusion
from qrhead_integrations.heads import HeadSet
from qrhead_integrations.parallel import ParallelEncoder
from qrhead_integrations.presets import get_preset, preset_names
from qrhead_integrations.prompt import to_passages

TEMPERATURES = (1.0, 0.9, 0.75, 0.5)
TOKENS = 128


def depth_of(model: str) -> int:
    """The deepest layer of any of the model's presets: the layers whose heads the cache keeps."""
    sets = [get_preset(model, name) for name in preset_names(model)]
    return max(s.deepest_layer for s in sets if s is not None)


def cache_file(cache_dir: Path, model: str, task: str) -> Path:
    """Where the study keeps one model's scores of one task (every layout in one file)."""
    return cache_dir / f"{model}__{task}__{TOKENS}__passage_cache_study.pt"


def build(model: str, task: str, cache_dir: Path, limit: int | None, split: str | None = None) -> Path:
    """Fill (or resume) the model's cache for ``task``: both layouts for every dev query."""
    path = cache_file(cache_dir, model, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = torch.load(path) if path.exists() else {"seconds": {}}
    layers, per_layer = SHAPES[model]
    heads = HeadSet.all_heads(layers, per_layer, layers=range(depth_of(model) + 1))
    variants = ["in_context", *(f"parallel@{t}" for t in TEMPERATURES)]
    for name in variants:
        state.setdefault(name, {})
    todo = [
        e
        for e in dev_examples(task)
        if (split is None or e.split == split) and any(e.key not in state[v] for v in variants)
    ][:limit]
    if not todo:
        return path
    scorer = QRHeadScorer.from_pretrained(model, heads=heads, max_passage_tokens=TOKENS, order="as_given")
    encoder = ParallelEncoder(scorer)
    for n, example in enumerate(tqdm(todo, desc=path.stem, unit="q"), start=1):
        perm = prompt_order(len(example.passages), ORDER_NAMES[PRODUCT_CACHE[task]], key=example.key)
        passages = to_passages(example.passages)
        started = time.perf_counter()
        in_context = scorer.score_per_head(example.question, [passages[i] for i in perm])
        middle = time.perf_counter()
        encoded = [encoder.encode(p) for p in passages]
        encoded_at = time.perf_counter()
        cached = {}
        for t in TEMPERATURES:
            cached[t] = encoder.score_per_head([example.question], [encoded[i] for i in perm], temperature=t)[0]
        done = time.perf_counter()
        state["seconds"][example.key] = {
            "in_context": middle - started,
            "encode": encoded_at - middle,
            "query": (done - encoded_at) / len(TEMPERATURES),
        }
        for name, per_head in (("in_context", in_context), *((f"parallel@{t}", cached[t]) for t in TEMPERATURES)):
            back = torch.empty_like(per_head)
            back[:, perm] = per_head
            state[name][example.key] = back.to(torch.float32)
        if n % 5 == 0 or n == len(todo):
            tmp = path.with_suffix(".tmp")
            torch.save(state, tmp)
            os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------------------- report
def _items(task: str, scores: dict[str, torch.Tensor]) -> list[DevScores]:
    return [
        DevScores(scores[e.key].double(), tuple(e.gold), tuple(e.local_bm25))
        for e in dev_examples(task)
        if e.key in scores
    ]


def _cv_redetected(model: str, task: str, data: list[DevScores], splits: int = 3) -> dict[str, float]:
    """Heads detected on one half of the queries (``top_k="auto"``), measured on the other: alone and fused."""
    per_layer = SHAPES[model][1]
    shape = (depth_of(model) + 1, per_layer)
    metric, fusion = TASKS[task], model_fusion(model)
    alone, fused = [], []
    for seed in range(splits):
        order = list(range(len(data)))
        random.Random(seed).shuffle(order)
        halves = [[data[i] for i in order[::2]], [data[i] for i in order[1::2]]]
        for fit, held in ((halves[0], halves[1]), (halves[1], halves[0])):
            found = select_heads(fit, top_k="auto", shape=shape, metric=metric).heads
            flat = [lay * per_layer + h for lay, h in found.heads]
            alone.append(figure(held, flat, metric))
            fused.append(figure(held, flat, metric, fusion))
    return {"alone": sum(alone) / len(alone), "fused": sum(fused) / len(fused)}


def report(models: list[str], cache_dir: Path) -> dict[str, Any]:
    """Per model and task, every layout's figures: the default heads on all cached queries and CV re-detection."""
    out: dict[str, Any] = {"models": {}}
    for model in models:
        per_task: dict[str, Any] = {}
        heads = default_heads(model)
        fusion = model_fusion(model)
        for task, metric in TASKS.items():
            path = cache_file(cache_dir, model, task)
            if not path.exists():
                continue
            state = torch.load(path)
            keys = set(state["in_context"])
            rows: dict[str, Any] = {}
            for name in ["in_context", *(f"parallel@{t}" for t in TEMPERATURES)]:
                data = [x for x in _items(task, {k: v for k, v in state[name].items() if k in keys})]
                rows[name] = {
                    "default_heads": {
                        "alone": figure(data, heads, metric),
                        "fused": figure(data, heads, metric, fusion),
                    },
                    "redetected_cv": _cv_redetected(model, task, data),
                }
            seconds = list(state["seconds"].values())
            everything = _items(task, {k: v for k, v in state["in_context"].items() if k in keys})
            per_task[task] = {
                "metric": metric,
                "queries": len(keys),
                "first_stage": first_stage_figure(everything, metric),
                "bm25_over_candidates": lexical_figure(everything, metric),
                "rows": rows,
                "seconds_per_query": {
                    k: sum(s[k] for s in seconds) / len(seconds) for k in ("in_context", "encode", "query")
                },
            }
        out["models"][model] = per_task
    return out


def markdown(result: dict[str, Any]) -> str:
    """The JSON report as Markdown tables."""
    lines = [
        "# Passage cache study: cached (parallel-encoded) passages against in-context reading",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    for model, per_task in result["models"].items():
        lines += [f"## {model}", ""]
        lines.append("| layout | task | queries | default heads alone | fused | re-detected (CV) alone | fused |")
        lines.append("|---|---|---|---|---|---|---|")
        for task, entry in per_task.items():
            for name, row in entry["rows"].items():
                d, r = row["default_heads"], row["redetected_cv"]
                lines.append(
                    f"| {name} | {task} ({entry['metric']}) | {entry['queries']} | {d['alone']:.3f} | {d['fused']:.3f}"
                    f" | {r['alone']:.3f} | {r['fused']:.3f} |"
                )
        lines.append("")
        for task, entry in per_task.items():
            lines.append(
                f"- {task}: first stage's order {entry['first_stage']:.3f}, BM25 over the candidates"
                f" {entry['bm25_over_candidates']:.3f}"
            )
        for task, entry in per_task.items():
            s = entry["seconds_per_query"]
            lines.append(
                f"- {task}: seconds per query (study run, heads of every layer up to the presets' deepest):"
                f" in-context {s['in_context']:.2f}, encoding its passages alone {s['encode']:.2f},"
                f" cached query pass {s['query']:.3f}"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def speed(
    model: str, queries: int, cuts: tuple[int, ...] = (128, 256), json_path: Path | None = None
) -> dict[str, Any]:
    """Seconds per query at the product's settings (default heads): in-context, cold cache, warm cache.

    Candidates: BM25's top 20 (or its first 10) for SciFact ``tune`` queries, cut to 128 or 256 tokens. Cold = every
    passage encoded, then the query; warm = the query over passages encoded before. Medians over ``queries``.
    """
    import statistics

    examples = [e for e in dev_examples("rerank") if e.split == "tune"][:queries]
    out: dict[str, Any] = {
        "command": "python research/study_passage_cache.py " + " ".join(sys.argv[1:]),
        "model": model,
        "queries": queries,
        "threads": torch.get_num_threads(),
        "cells": [],
    }
    for cut in cuts:
        scorer = QRHeadScorer.from_pretrained(model, max_passage_tokens=cut)
        encoder = ParallelEncoder(scorer)
        out["dtype"] = str(scorer.dtype).removeprefix("torch.")
        layer = encoder.encode(to_passages(["probe"])[0])
        per_token = sum(
            k[:, 0].numel() * k.element_size() + v[:, 0].numel() * v.element_size()
            for k, v in zip(layer.keys, layer.values, strict=True)
        )
        out["bytes_per_cached_token"] = per_token
        for count in (10, 20):
            timings: dict[str, list[float]] = {"in_context": [], "cold": [], "warm": []}
            tokens = []
            for example in examples:
                passages = to_passages(example.passages[:count])
                scorer.score(example.question, passages)  # warm-up of this shape
                t0 = time.perf_counter()
                scorer.score(example.question, passages)
                t1 = time.perf_counter()
                encoded = [encoder.encode(p) for p in passages]
                encoder.score_per_head([example.question], encoded)
                t2 = time.perf_counter()
                encoder.score_per_head([example.question], encoded)
                t3 = time.perf_counter()
                timings["in_context"].append(t1 - t0)
                timings["cold"].append(t2 - t1)
                timings["warm"].append(t3 - t2)
                tokens.append(sum(e.length for e in encoded))
            cell = {k: statistics.median(v) for k, v in timings.items()}
            cell.update(cut=cut, candidates=count, passage_tokens=statistics.median(tokens))
            cell["speedup_warm"] = cell["in_context"] / cell["warm"]
            print(cell)
            out["cells"].append(cell)
            if json_path is not None:  # after every cell: a long run stopped early keeps what it measured
                json_path.parent.mkdir(parents=True, exist_ok=True)
                json_path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return out


def main() -> None:
    """Fill a cache (``--task``) or write the report (``--report``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--task", choices=tuple(TASKS))
    parser.add_argument("--limit", type=int, help="at most this many new queries this run")
    parser.add_argument("--split", choices=("select", "tune"), help="fill one dev split only")
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--speed", type=int, metavar="QUERIES", help="time the product settings on QUERIES queries")
    parser.add_argument("--cuts", default="128,256", help="passage cuts the speed run measures (comma-separated)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("QRHEAD_STUDY_THREADS", torch.get_num_threads())))
    if args.speed:
        cuts = tuple(int(c) for c in args.cuts.split(","))
        speed(args.model[0], args.speed, cuts, args.json)
        return
    if not args.report:
        for model in args.model:
            print(build(model, args.task, args.cache_dir, args.limit, args.split))
        return
    result = report(args.model, args.cache_dir)
    result["command"] = "python research/study_passage_cache.py " + " ".join(sys.argv[1:])
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown(result), encoding="utf-8")


if __name__ == "__main__":
    main()
