"""Choose the defaults (head set, first-stage fusion, prompt order, passage cut) on dev data — issue #13.

Reads the all-head score caches written by ``benchmarks/study_cache.py`` (dev slices only; no model runs here)
and evaluates every candidate setting from them, exactly: a head set's score is the mean of its heads' scores,
and fusion is :func:`qrhead_integrations.fusion.fuse_with_first_stage`, the function the product calls.

Splits (see ``study_cache.py``): ``select`` chooses heads (greedy forward selection adds heads on its first two
thirds and takes the size that scores best on its last third; the top-16 table is built from all of it);
``tune`` compares head sets and chooses fusion, order and cut. Neither touches the evaluation rows of
docs/results.md (HotpotQA 100-199, SciFact train 100-149), which stay the held-out check.

Metrics on the dev candidate lists: SciFact nDCG@10 over BM25's top 20 (binary gold = judged relevant among the
20, so figures run above BEIR's, which also count relevant documents outside the 20), HotpotQA recall@2.

    python benchmarks/study_defaults.py --model smollm2-135m-instruct --tokens 128 \\
        --json reports/defaults_smollm2.json --markdown reports/defaults_smollm2.md
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import write_reports
from study_cache import CACHE, DevExample, cache_path, dev_examples

from qrhead_integrations.detect import ExampleHeadScores, Objective, greedy_heads, head_scores_table
from qrhead_integrations.fusion import Fusion, fuse_with_first_stage
from qrhead_integrations.presets import get_preset

TASKS = {"rerank": "ndcg@10", "multihop": "recall@2"}
# The order a product sees: SciFact candidates arrive in BM25 order and are laid out by the scorer's ``order``;
# HotpotQA's file order carries no ranking, so any layout of it is a random one (the shuffled cache).
PRODUCT_CACHE = {"rerank": "reversed", "multihop": "shuffled"}
RANDOM_SEEDS = 10
SHAPES = {
    "smollm2-135m-instruct": (30, 9),
    "qwen2.5-coder-0.5b-instruct": (24, 14),
    "qwen2.5-coder-1.5b-instruct": (28, 12),
}
FUSION_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def load(model: str, task: str, order: str, tokens: int | None, cache_dir: Path) -> dict[str, torch.Tensor] | None:
    path = cache_path(cache_dir, model, task, order, tokens)
    if not path.exists():
        return None
    scores: dict[str, torch.Tensor] = torch.load(path)["scores"]
    return scores


def items(examples: list[DevExample], scores: dict[str, torch.Tensor], split: str) -> list[ExampleHeadScores]:
    out: list[ExampleHeadScores] = []
    for e in examples:
        if e.split == split and e.key in scores:
            item = ExampleHeadScores(scores[e.key].double(), tuple(e.gold))
            LEXICAL[id(item)] = e.local_bm25
            out.append(item)
    return out


LEXICAL: dict[int, list[float]] = {}
"""BM25 over each dev query's own candidates, by the id of its scored item (kept beside the frozen items)."""


def metric(ranking_scores: list[float], gold: tuple[int, ...], name: str) -> float:
    order = sorted(range(len(ranking_scores)), key=lambda i: (-ranking_scores[i], i))
    if name == "recall@2":
        return len(set(order[:2]) & set(gold)) / len(set(gold))
    dcg = sum(1 / np.log2(r + 2) for r, i in enumerate(order[:10]) if i in gold)
    ideal = sum(1 / np.log2(r + 2) for r in range(min(10, len(gold))))
    return float(dcg / ideal)


def figure(
    data: list[ExampleHeadScores], heads: list[int], name: str, fusion: Fusion | None = None
) -> float:
    """Mean ``name`` of the head subset over ``data``, fused with the candidates' first-stage order."""
    total = 0.0
    for item in data:
        qr = item.per_head[heads].mean(dim=0).tolist()
        scores = qr if fusion is None else fuse_with_first_stage(qr, fusion, lexical_scores=LEXICAL[id(item)])
        total += metric(scores, item.gold, name)
    return total / len(data) if data else float("nan")


def first_stage_figure(data: list[ExampleHeadScores], name: str) -> float:
    return sum(metric([-float(i) for i in range(item.per_head.shape[1])], item.gold, name) for item in data) / len(
        data
    )


def lexical_figure(data: list[ExampleHeadScores], name: str) -> float:
    return sum(metric(LEXICAL[id(item)], item.gold, name) for item in data) / len(data)


def head_sets(
    model: str, shape: tuple[int, int], selects: dict[str, list[ExampleHeadScores]]
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Candidate head sets (flat layer-major indices) and the greedy paths."""
    n_layers, n_heads = shape
    total = n_layers * n_heads
    sets: dict[str, list[int]] = {}
    for preset in ("multihop", "rerank"):
        found = get_preset(model, preset)
        if found is not None:
            sets[f"shipped `{preset}`"] = [lay * n_heads + h for lay, h in found.heads]
    joint = [x for task in selects for x in selects[task]]
    table = head_scores_table(joint, method="qr_score", num_layers=n_layers, num_heads=n_heads)
    sets["top-16 by QR score"] = [lay * n_heads + h for lay, h in table.top(16).heads]
    best_layer = table.best_layer()
    sets[f"best layer ({best_layer})"] = [best_layer * n_heads + h for h in range(n_heads)]
    sets["all heads"] = list(range(total))
    for seed in range(RANDOM_SEEDS):
        sets[f"random-16 #{seed}"] = sorted(random.Random(seed).sample(range(total), 16))
    paths: dict[str, Any] = {}
    for name, tasks in (("greedy, both tasks", list(selects)), *((f"greedy, {t} only", [t]) for t in selects)):
        fit = [Objective(selects[t][: len(selects[t]) * 2 // 3], TASKS[t]) for t in tasks]
        stop = [Objective(selects[t][len(selects[t]) * 2 // 3 :], TASKS[t]) for t in tasks]
        path = greedy_heads(fit, stop, n_total=total, max_heads=32, patience=8)
        sets[name] = list(path.heads[: path.size])
        paths[name] = {
            "heads": [f"{i // n_heads}-{i % n_heads}" for i in path.heads[: path.size]],
            "fit": [round(v, 4) for v in path.fit],
            "stop": [round(v, 4) for v in path.stop],
            "size": path.size,
        }
    return sets, paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    examples = {task: dev_examples(task) for task in TASKS}
    product = {task: load(args.model, task, PRODUCT_CACHE[task], args.tokens, args.cache_dir) for task in TASKS}
    missing = [task for task, found in product.items() if found is None]
    if missing:
        raise SystemExit(f"missing caches for {missing}: run benchmarks/study_cache.py first")
    caches = {task: found for task, found in product.items() if found is not None}
    selects = {task: items(examples[task], caches[task], "select") for task in TASKS}
    tunes = {task: items(examples[task], caches[task], "tune") for task in TASKS}
    shape = SHAPES[args.model]
    sets, paths = head_sets(args.model, shape, selects)

    rows: dict[str, dict[str, float]] = {}
    for name, heads in sets.items():
        rows[name] = {task: figure(tunes[task], heads, TASKS[task]) for task in TASKS}
    randoms = [rows[n] for n in rows if n.startswith("random-16")]
    summary = {
        "random-16 mean": {t: float(np.mean([r[t] for r in randoms])) for t in TASKS},
        "random-16 best": {t: float(np.max([r[t] for r in randoms])) for t in TASKS},
        "first stage (input order)": {t: first_stage_figure(tunes[t], TASKS[t]) for t in TASKS},
        "BM25 over the candidates": {t: lexical_figure(tunes[t], TASKS[t]) for t in TASKS},
    }
    heads_table = {n: r for n, r in rows.items() if not n.startswith("random-16")} | summary

    fusion_rows: dict[str, dict[str, dict[str, float]]] = {}
    for name in [n for n in sets if not n.startswith("random-16")]:
        fusion_rows[name] = {
            f"w={w}": {t: figure(tunes[t], sets[name], TASKS[t], Fusion(weight=w) if w else None) for t in TASKS}
            for w in FUSION_WEIGHTS
        }
    grid: dict[str, dict[str, dict[str, float]]] = {}
    for name in [n for n in sets if not n.startswith("random-16")]:
        grid[name] = {}
        for w in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5):
            for lex in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5):
                if w + lex > 0.8:
                    continue
                fusion = Fusion(weight=w, lexical=lex) if w or lex else None
                grid[name][f"{w}/{lex}"] = {
                    split: {t: figure(data[t], sets[name], TASKS[t], fusion) for t in TASKS}
                    for split, data in (("select", selects), ("tune", tunes))
                }

    extra: dict[str, dict[str, float]] = {}
    for order in ("as_given", "shuffled", "reversed"):
        for tokens in (64, 128, 192, 256):
            found = load(args.model, "rerank", order, tokens, args.cache_dir)
            if found is None:
                continue
            data = items(examples["rerank"], found, "tune")
            keys = {e.key for e in examples["rerank"] if e.split == "tune" and e.key in found}
            extra[f"rerank {order} {tokens}"] = {
                "queries": float(len(keys)),
                **{
                    f"{name} w={w}": figure(data, sets[name], "ndcg@10", Fusion(weight=w) if w else None)
                    for name in ("shipped `multihop`", "greedy, both tasks", "all heads")
                    for w in (0.0, 0.3)
                },
            }
    report = {
        "model": args.model,
        "tokens": args.tokens,
        "counts": {t: {"select": len(selects[t]), "tune": len(tunes[t])} for t in TASKS},
        "head_sets": heads_table,
        "greedy": paths,
        "fusion": fusion_rows,
        "fusion_grid": grid,
        "order_and_cut": extra,
    }
    write_reports(report, markdown(report), json_path=args.json, markdown_path=args.markdown)


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Defaults study — {report['model']} (passages cut to {report['tokens']} tokens)", ""]
    counts = report["counts"]
    lines.append(
        f"Dev `tune` split: SciFact {counts['rerank']['tune']} queries (nDCG@10, BM25 top-20 laid out best-last), "
        f"HotpotQA {counts['multihop']['tune']} questions (recall@2, random layout). Heads chosen on `select` "
        f"({counts['rerank']['select']} / {counts['multihop']['select']})."
    )
    lines += ["", "## Head sets (no fusion)", ""]
    lines += ["| head set | SciFact nDCG@10 | HotpotQA recall@2 | mean |", "|---|---|---|---|"]
    for name, row in report["head_sets"].items():
        if name.startswith("random-16 #"):
            continue
        lines.append(
            f"| {name} | {row['rerank']:.3f} | {row['multihop']:.3f} | {(row['rerank'] + row['multihop']) / 2:.3f} |"
        )
    lines += ["", "## Fusion with the first stage's order (weighted RRF, weight of the first stage)", ""]
    weights = list(next(iter(report["fusion"].values())))
    lines += ["| head set | " + " | ".join(weights) + " |", "|---" * (len(weights) + 1) + "|"]
    for name, by_weight in report["fusion"].items():
        cells = [f"{v['rerank']:.3f} / {v['multihop']:.3f}" for v in by_weight.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: SciFact nDCG@10 / HotpotQA recall@2.")
    for name, cells in report["fusion_grid"].items():
        if not (name.startswith("shipped") or name.startswith("greedy, both")):
            continue
        title = f"### Three-way fusion, {name}: first-stage weight / lexical (BM25 over the candidates) weight"
        header = "| weights | select SciFact | select HotpotQA | tune SciFact | tune HotpotQA | tune mean |"
        lines += ["", title, "", header, "|---" * 6 + "|"]
        for key, by_split in cells.items():
            sel, tun = by_split["select"], by_split["tune"]
            lines.append(
                f"| {key} | {sel['rerank']:.3f} | {sel['multihop']:.3f} | {tun['rerank']:.3f} | "
                f"{tun['multihop']:.3f} | {(tun['rerank'] + tun['multihop']) / 2:.3f} |"
            )
    if report["order_and_cut"]:
        lines += ["", "## SciFact: prompt order and passage cut (tune split)", ""]
        first = next(iter(report["order_and_cut"].values()))
        cols = [c for c in first if c != "queries"]
        lines += ["| order, cut | queries | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
        for name, row in report["order_and_cut"].items():
            lines.append(f"| {name} | {int(row['queries'])} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    lines += ["", "## Greedy paths", ""]
    for name, path in report["greedy"].items():
        lines.append(f"- {name}: size {path['size']}: {','.join(path['heads'])}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
