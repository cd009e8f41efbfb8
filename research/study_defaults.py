"""Choose the defaults (head set, first-stage fusion, prompt order, passage cut) on dev data — issue #13.

Reads the all-head score caches written by ``research/study_cache.py`` (dev slices only; no model runs here)
and evaluates every candidate setting from them, exactly: a head set's score is the mean of its heads' scores,
and fusion is :func:`qrhead_integrations.fusion.fuse_with_first_stage`, the function the product calls.

Splits (see ``study_cache.py``): ``select`` chooses heads (greedy forward selection adds heads on its first two
thirds and takes the size that scores best on its last third; the top-16 table is built from all of it);
``tune`` compares head sets and chooses fusion, order and cut. Neither touches the evaluation rows of
docs/results.md (HotpotQA 100-199, SciFact train 100-149), which stay the held-out check.

Metrics on the dev candidate lists: SciFact nDCG@10 over BM25's top 20 (binary gold = judged relevant among the
20, so figures run above BEIR's, which also count relevant documents outside the 20), HotpotQA recall@2.

    python research/study_defaults.py --model smollm2-135m-instruct --tokens 128 \\
        --json reports/defaults_smollm2.json --markdown reports/defaults_smollm2.md
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import write_reports
from study_cache import CACHE, PRODUCT, CacheVariant, DevExample, cache_path, dev_examples

from qrhead_integrations.detect import ExampleHeadScores, Objective, greedy_heads, head_scores_table, ranking_metric
from qrhead_integrations.fusion import Fusion, fuse_with_first_stage, model_fusion
from qrhead_integrations.heads import HeadSet, resolve_heads
from qrhead_integrations.presets import default_preset, get_preset

TASKS = {"rerank": "ndcg@10", "multihop": "recall@2"}
# The order a product sees: SciFact candidates arrive in BM25 order and are laid out by the scorer's ``order``;
# HotpotQA's file order carries no ranking, so any layout of it is a random one (the shuffled cache).
PRODUCT_CACHE = {"rerank": "reversed", "multihop": "shuffled"}
RANDOM_SEEDS = 10
CUTS = (64, 128, 192, 256)
"""The passage cuts (``max_passage_tokens``) the cut tables look for in the caches."""
SHAPES = {
    "smollm2-135m-instruct": (30, 9),
    "qwen2.5-coder-0.5b-instruct": (24, 14),
    "qwen2.5-coder-1.5b-instruct": (28, 12),
}


def load(
    model: str, task: str, order: str, tokens: int | None, cache_dir: Path, variant: CacheVariant = PRODUCT
) -> dict[str, torch.Tensor] | None:
    path = cache_path(cache_dir, model, task, order, tokens, variant)
    if not path.exists():
        return None
    scores: dict[str, torch.Tensor] = torch.load(path)["scores"]
    return scores


def product_cache(
    model: str, task: str, tokens: int, cache_dir: Path, variant: CacheVariant = PRODUCT
) -> dict[str, torch.Tensor]:
    """The scores of the product's layout (``PRODUCT_CACHE``) in one scorer variant; exits when not cached."""
    found = load(model, task, PRODUCT_CACHE[task], tokens, cache_dir, variant)
    if found is None:
        raise SystemExit(f"missing {task} cache for {model}: run research/study_cache.py ...{variant.flags} first")
    return found


@dataclass(frozen=True)
class DevScores(ExampleHeadScores):
    """One dev query's all-head scores, with BM25 over its own candidates (the lexical signal fusion reads)."""

    lexical: tuple[float, ...] = ()


def items(examples: list[DevExample], scores: dict[str, torch.Tensor], split: str) -> list[DevScores]:
    return [
        DevScores(scores[e.key].double(), tuple(e.gold), tuple(e.local_bm25))
        for e in examples
        if e.split == split and e.key in scores
    ]


def flat_heads(model: str, heads: HeadSet) -> list[int]:
    """``heads`` as flat indices into a cache's ``layers x heads`` rows of ``model``."""
    return [lay * SHAPES[model][1] + h for lay, h in heads.heads]


def model_heads(model: str, spec: str) -> HeadSet:
    """A preset name of ``model`` or a ``"layer-head,..."`` list, resolved and checked as the product does."""
    layers, per_layer = SHAPES[model]
    return resolve_heads(spec, model_id=model, num_layers=layers, num_heads=per_layer)


def union_heads(first: HeadSet, second: HeadSet) -> HeadSet:
    """``first``'s heads, then ``second``'s that ``first`` lacks (a candidate for a model with one set per task)."""
    return HeadSet(first.heads + tuple(h for h in second.heads if h not in first.heads))


def default_heads(model: str) -> list[int]:
    """The model's default head set as flat indices into a cache's ``layers x heads`` rows."""
    default = default_preset(model)
    if default is None:
        raise SystemExit(f"no default heads for {model}")
    return flat_heads(model, default)


def product_dev(
    model: str, tokens: int, cache_dir: Path, examples: dict[str, list[DevExample]]
) -> dict[str, list[DevScores]]:
    """Both dev splits of each task, from the cache of the layout the product sees (``PRODUCT_CACHE``)."""
    dev = {}
    for task in TASKS:
        found = product_cache(model, task, tokens, cache_dir)
        dev[task] = items(examples[task], found, "select") + items(examples[task], found, "tune")
    return dev


def add_unseen_only(parser: argparse.ArgumentParser) -> None:
    """The ``--unseen-only MODEL`` option of the fusion studies (see :func:`unseen_only`)."""
    parser.add_argument(
        "--unseen-only",
        action="append",
        default=[],
        help="a model whose default heads were detected on its SciFact `select` split: score its SciFact on the "
        "`tune` split alone (repeatable)",
    )


def unseen_only(
    data: dict[str, dict[str, list[DevScores]]],
    models: list[str],
    tokens: int,
    cache_dir: Path,
    examples: dict[str, list[DevExample]],
) -> None:
    """Keep only the SciFact ``tune`` queries of ``models`` in ``data``: those whose default heads were detected on
    the ``select`` split (Qwen 0.5B's ``rerank-best-last``), so a setting is chosen on queries its heads never read."""
    for model in models:
        scores = load(model, "rerank", PRODUCT_CACHE["rerank"], tokens, cache_dir)
        data[model]["rerank"] = items(examples["rerank"], scores or {}, "tune")


def metric(ranking_scores: list[float], gold: tuple[int, ...], name: str) -> float:
    return ranking_metric(ranking_scores, gold, name)


def figure(data: list[DevScores], heads: list[int], name: str, fusion: Fusion | None = None) -> float:
    """Mean ``name`` of the head subset over ``data``, fused with the candidates' first-stage order."""
    total = 0.0
    for item in data:
        qr = item.per_head[heads].mean(dim=0).tolist()
        scores = qr if fusion is None else fuse_with_first_stage(qr, fusion, lexical_scores=item.lexical)
        total += metric(scores, item.gold, name)
    return total / len(data) if data else float("nan")


def first_stage_figure(data: list[ExampleHeadScores], name: str) -> float:
    return sum(metric([-float(i) for i in range(item.per_head.shape[1])], item.gold, name) for item in data) / len(data)


def lexical_figure(data: list[DevScores], name: str) -> float:
    return sum(metric(list(item.lexical), item.gold, name) for item in data) / len(data)


Figures = dict[str, dict[str, float]]  # model -> task -> dev figure
PooledData = dict[str, dict[str, list[DevScores]]]  # model -> task -> dev queries
Halving = dict[str, dict[str, list[int]]]  # model -> task -> indices of one half's queries


def baseline_figures(data: PooledData) -> dict[str, dict[str, dict[str, float]]]:
    """The model-free baselines of every model and task: the first stage's order and BM25 over the candidates."""
    return {
        m: {
            t: {"first stage": first_stage_figure(d[t], TASKS[t]), "bm25": lexical_figure(d[t], TASKS[t])}
            for t in TASKS
        }
        for m, d in data.items()
    }


def pooled_choice(
    candidates: list[Any], figures: Callable[[Any, PooledData], Figures], name: Callable[[Any], str], data: PooledData
) -> dict[str, Any]:
    """The pooled rule of :func:`choose` over any candidates (fusion cells, fusion forms...): the best mean over
    models and tasks among the candidates at or above, for every model and task, the stronger model-free baseline
    (first stage or BM25 over the candidates); if none qualifies, the best mean. ``raw`` is the chosen candidate."""
    scored = []
    for candidate in candidates:
        values = figures(candidate, data)
        ok = all(
            values[m][t] >= max(first_stage_figure(data[m][t], TASKS[t]), lexical_figure(data[m][t], TASKS[t]))
            for m in data
            for t in TASKS
        )
        mean = float(np.mean([values[m][t] for m in data for t in TASKS]))
        scored.append({"cell": name(candidate), "ok": ok, "mean": mean, "figures": values, "raw": candidate})
    qualified = [s for s in scored if s["ok"]]
    best = max(qualified or scored, key=lambda s: s["mean"])
    return {**best, "qualified": len(qualified)}


def halvings(data: PooledData, splits: int) -> list[tuple[Halving, Halving]]:
    """``splits`` random halvings of each model's and task's queries (seeds 0, 1, ...): pairs of index lists."""
    out = []
    for seed in range(splits):
        rng = random.Random(seed)
        first: Halving = {m: {} for m in data}
        second: Halving = {m: {} for m in data}
        for m in data:
            for t in TASKS:
                order = list(range(len(data[m][t])))
                rng.shuffle(order)
                first[m][t], second[m][t] = order[::2], order[1::2]
        out.append((first, second))
    return out


def part(data: PooledData, indices: Halving) -> PooledData:
    """The queries of ``data`` at ``indices`` (one half of a halving)."""
    return {m: {t: [data[m][t][i] for i in indices[m][t]] for t in TASKS} for m in data}


def cross_validated_choice(
    candidates: list[Any],
    figures: Callable[[Any, PooledData], Figures],
    name: Callable[[Any], str],
    data: PooledData,
    splits: int,
    *,
    held_out: bool = False,
) -> dict[str, Any]:
    """Two-fold cross-validation of :func:`pooled_choice` over ``splits`` random halvings of each task's queries:
    the mean figure of each half's choice on the other half (``figures``), and the choices (``picks``). With
    ``held_out``, also each choice with the indices of the half it was scored on (``held_out``: ``(candidate,
    indices)`` pairs), for query-by-query comparisons."""
    scores: dict[str, dict[str, list[float]]] = {m: {t: [] for t in TASKS} for m in data}
    picks: list[str] = []
    scored_on: list[tuple[Any, Halving]] = []
    for pair in halvings(data, splits):
        for i in (0, 1):
            chosen = pooled_choice(candidates, figures, name, part(data, pair[i]))["raw"]
            picks.append(name(chosen))
            scored_on.append((chosen, pair[1 - i]))
            values = figures(chosen, part(data, pair[1 - i]))
            for m in data:
                for t in TASKS:
                    scores[m][t].append(values[m][t])
    means = {m: {t: float(np.mean(v)) for t, v in per.items()} for m, per in scores.items()}
    return {"figures": means, "picks": picks, **({"held_out": scored_on} if held_out else {})}


def fitted_sets(
    shape: tuple[int, int], fit: dict[str, list[ExampleHeadScores]]
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Head sets chosen from ``fit`` examples only: top-16 by QR score, the best layer, greedy selection (its
    first two thirds add heads, the last third picks the size) on both tasks and on each task alone."""
    n_layers, n_heads = shape
    total = n_layers * n_heads
    joint = [x for task in fit for x in fit[task]]
    table = head_scores_table(joint, method="qr_score", num_layers=n_layers, num_heads=n_heads)
    sets = {
        "top-16 by QR score": [lay * n_heads + h for lay, h in table.top(16).heads],
        "best layer": [table.best_layer() * n_heads + h for h in range(n_heads)],
    }
    paths: dict[str, Any] = {}
    for name, tasks in (("greedy, both tasks", list(fit)), *((f"greedy, {t} only", [t]) for t in fit)):
        fit_part = [Objective(fit[t][: len(fit[t]) * 2 // 3], TASKS[t]) for t in tasks]
        stop_part = [Objective(fit[t][len(fit[t]) * 2 // 3 :], TASKS[t]) for t in tasks]
        path = greedy_heads(fit_part, stop_part, n_total=total, max_heads=32, patience=8)
        sets[name] = list(path.heads[: path.size])
        paths[name] = {"heads": [f"{i // n_heads}-{i % n_heads}" for i in sets[name]], "size": path.size}
    return sets, paths


def folds(data: dict[str, list[ExampleHeadScores]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Two folds per task (alternate examples): ``(fit, held_out)`` pairs."""
    a = {t: xs[0::2] for t, xs in data.items()}
    b = {t: xs[1::2] for t, xs in data.items()}
    return [(a, b), (b, a)]


def head_set_table(model: str, shape: tuple[int, int], dev: dict[str, list[ExampleHeadScores]]) -> dict[str, Any]:
    """Every candidate head set's held-out figure per task, alone (``rows``) and at the model's default fusion
    (``fused``, what the product returns): fitted sets by two-fold cross-validation (fit on one half, measure on
    the other, averaged), fixed sets on all dev examples.

    Why both: a set can read well alone by copying what the fusion already adds (the first stage's best passage
    sits next to the query in the product's layout), so only the fused figure says whether it earns a change.
    """
    n_layers, n_heads = shape
    total = n_layers * n_heads
    fusion = model_fusion(model)
    rows: dict[str, dict[str, float]] = {}
    fused: dict[str, dict[str, float]] = {}

    def add(name: str, data: dict[str, list[Any]], heads: list[int]) -> None:
        rows[name] = {t: figure(data[t], heads, TASKS[t]) for t in TASKS}
        fused[name] = {t: figure(data[t], heads, TASKS[t], fusion) for t in TASKS}

    for preset in ("multihop", "rerank"):
        found = get_preset(model, preset)
        if found is not None:
            add(f"shipped `{preset}` (in-sample on part of dev)", dev, [lay * n_heads + h for lay, h in found.heads])
    add("all heads", dev, list(range(total)))
    randoms = [sorted(random.Random(seed).sample(range(total), 16)) for seed in range(RANDOM_SEEDS)]
    random_rows = [{t: figure(dev[t], heads, TASKS[t]) for t in TASKS} for heads in randoms]
    rows["random-16, mean of 10"] = {t: float(np.mean([r[t] for r in random_rows])) for t in TASKS}
    rows["random-16, best of 10"] = {t: float(np.max([r[t] for r in random_rows])) for t in TASKS}
    cross: dict[str, dict[str, list[float]]] = {}
    cross_fused: dict[str, dict[str, list[float]]] = {}
    paths: list[dict[str, Any]] = []
    for fit, held in folds(dev):
        sets, fold_paths = fitted_sets(shape, fit)
        paths.append(fold_paths)
        for name, heads in sets.items():
            for t in TASKS:
                key = f"{name} (2-fold CV)"
                cross.setdefault(key, {}).setdefault(t, []).append(figure(held[t], heads, TASKS[t]))
                cross_fused.setdefault(key, {}).setdefault(t, []).append(figure(held[t], heads, TASKS[t], fusion))
    for name, by_task in cross.items():
        rows[name] = {t: float(np.mean(v)) for t, v in by_task.items()}
        fused[name] = {t: float(np.mean(v)) for t, v in cross_fused[name].items()}
    rows["first stage (input order)"] = {t: first_stage_figure(dev[t], TASKS[t]) for t in TASKS}
    rows["BM25 over the candidates"] = {t: lexical_figure(dev[t], TASKS[t]) for t in TASKS}
    return {"rows": rows, "fused": fused, "fusion": repr(fusion), "greedy_paths": paths}


FUSION_GRID = [
    (w, lex) for w in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5) for lex in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5) if w + lex <= 0.8
]


def fusion_grid(model: str, shape: tuple[int, int], dev: dict[str, list[ExampleHeadScores]]) -> dict[str, Any]:
    """Dev figures of every (first-stage weight, lexical share) with the model's default heads, plus the
    model-free fusion of the two (QRHead's share 0) for comparison."""
    heads = default_heads(model)
    cells: dict[str, dict[str, float]] = {}
    for w, lex in FUSION_GRID:
        fusion = Fusion(weight=w, lexical=lex, form="ranks") if (w or lex) else None
        cells[f"{w}/{lex}"] = {t: figure(dev[t], heads, TASKS[t], fusion) for t in TASKS}
    model_free = {
        f"{w}/{round(1 - w, 1)}": {
            t: figure(dev[t], heads, TASKS[t], Fusion(weight=w, lexical=round(1 - w, 1), form="ranks")) for t in TASKS
        }
        for w in (0.3, 0.5, 0.7)
    }
    return {"cells": cells, "model_free": model_free}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="repeat for several models (pooled choice)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    examples = {task: dev_examples(task) for task in TASKS}
    per_model: dict[str, Any] = {}
    for model in args.model:
        dev = product_dev(model, args.tokens, args.cache_dir, examples)
        shape = SHAPES[model]
        per_model[model] = {
            "counts": {t: len(dev[t]) for t in TASKS},
            "head_sets": head_set_table(model, shape, dev),
            "fusion": fusion_grid(model, shape, dev),
            "cuts": cut_table(model, shape, examples, args.cache_dir),
            "multihop_cuts": multihop_cut_table(model, examples, args.cache_dir),
            "multihop_orders": multihop_order_table(model, examples, args.cache_dir),
        }
    report = {"tokens": args.tokens, "models": per_model, "choice": choose(per_model)}
    write_reports(report, markdown(report), json_path=args.json, markdown_path=args.markdown)


def cut_table(
    model: str, shape: tuple[int, int], examples: dict[str, list[DevExample]], cache_dir: Path
) -> dict[str, dict[str, float]]:
    """SciFact dev figures by passage cut (and prompt order), default heads, unfused and at the model's fusion.

    Per order, only the queries every cached cut of that order holds, so the cuts of one order are compared on
    the same queries (both splits where every cut has them).
    """
    heads = default_heads(model)
    fusion = model_fusion(model)
    out: dict[str, dict[str, float]] = {}
    loaded = {
        order: {tokens: load(model, "rerank", order, tokens, cache_dir) for tokens in CUTS}
        for order in ("reversed", "as_given", "shuffled")
    }
    # ``debias=True`` averages the best-last and best-first layouts' scores: computable wherever both are cached.
    loaded["both (debias)"] = {
        tokens: _averaged(loaded["reversed"][tokens], loaded["as_given"][tokens]) for tokens in CUTS
    }
    for order, found in loaded.items():
        for tokens, (data, _) in common_rows(found, examples["rerank"]).items():
            out[f"{order}, {tokens} tokens"] = {
                "queries": float(len(data)),
                "qrhead": figure(data, heads, "ndcg@10"),
                "fused": figure(data, heads, "ndcg@10", fusion),
                "first stage": first_stage_figure(data, "ndcg@10"),
            }
    return out


def multihop_cut_table(
    model: str, examples: dict[str, list[DevExample]], cache_dir: Path
) -> dict[str, dict[str, float]]:
    """HotpotQA dev figures by passage cut (the random-layout caches), default heads, unfused and at the model's
    fusion, on the rows every cached cut holds; the ``tune`` rows (60-99) apart, since some head sets read 0-59."""
    heads = default_heads(model)
    fusion = model_fusion(model)
    found = {tokens: load(model, "multihop", PRODUCT_CACHE["multihop"], tokens, cache_dir) for tokens in CUTS}
    rows = common_rows(found, examples["multihop"])
    if len(rows) < 2:
        return {}
    out: dict[str, dict[str, float]] = {}
    for tokens, (data, tune) in rows.items():
        out[f"{tokens} tokens"] = {
            "rows": float(len(data)),
            "qrhead": figure(data, heads, "recall@2"),
            "fused": figure(data, heads, "recall@2", fusion),
            "tune rows": float(len(tune)),
            "tune qrhead": figure(tune, heads, "recall@2"),
            "tune fused": figure(tune, heads, "recall@2", fusion),
            "BM25 over the candidates": lexical_figure(data, "recall@2"),
        }
    return out


def multihop_order_table(
    model: str, examples: dict[str, list[DevExample]], cache_dir: Path
) -> dict[str, dict[str, float]]:
    """HotpotQA dev figures by prompt layout at 128 tokens: the file order reversed (what the product's default
    ``order="reversed"`` shows for a list in file order), the file order, a seeded shuffle, and the first two
    averaged (``debias=True``); the rows every cached layout holds. Empty unless two layouts are cached."""
    heads = default_heads(model)
    fusion = model_fusion(model)
    found = {order: load(model, "multihop", order, 128, cache_dir) for order in ("reversed", "as_given", "shuffled")}
    found["both (debias)"] = _averaged(found["reversed"], found["as_given"])
    rows = common_rows(found, examples["multihop"])
    if len(rows) < 2:
        return {}
    out: dict[str, dict[str, float]] = {}
    for order, (data, _) in rows.items():
        out[order] = {
            "rows": float(len(data)),
            "qrhead": figure(data, heads, "recall@2"),
            "fused": figure(data, heads, "recall@2", fusion),
        }
    return out


def common_rows(
    found: Mapping[Any, dict[str, torch.Tensor] | None], examples: list[DevExample]
) -> dict[Any, tuple[list[DevScores], list[DevScores]]]:
    """Per cached entry of ``found`` (``None``: not cached, left out): its dev items on the queries every cached
    entry holds, ``select`` then ``tune`` — and the ``tune`` ones alone — so that the entries compare on the same
    queries."""
    caches = {label: scores for label, scores in found.items() if scores is not None}
    if not caches:
        return {}
    common = set.intersection(*(set(scores) for scores in caches.values()))
    out = {}
    for label, scores in caches.items():
        shared = {key: value for key, value in scores.items() if key in common}
        tune = items(examples, shared, "tune")
        out[label] = (items(examples, shared, "select") + tune, tune)
    return out


def _averaged(
    first: dict[str, torch.Tensor] | None, second: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor] | None:
    """The mean of two layouts' scores on the queries both hold (``None`` unless both are cached)."""
    if first is None or second is None:
        return None
    return {key: (first[key] + second[key]) / 2 for key in first if key in second}


def choose(per_model: dict[str, Any]) -> dict[str, Any]:
    """The fusion default: the cell with the best mean over models and tasks among those at or above, for every
    model, the stronger model-free baseline of each task (first stage or BM25 over the candidates); if no cell
    qualifies, the best mean, flagged."""
    cells = next(iter(per_model.values()))["fusion"]["cells"]
    scored = []
    for key in cells:
        figures = [m["fusion"]["cells"][key][t] for m in per_model.values() for t in TASKS]
        ok = all(
            m["fusion"]["cells"][key][t]
            >= max(
                m["head_sets"]["rows"]["first stage (input order)"][t],
                m["head_sets"]["rows"]["BM25 over the candidates"][t],
            )
            for m in per_model.values()
            for t in TASKS
        )
        scored.append((ok, float(np.mean(figures)), key))
    qualified = [x for x in scored if x[0]]
    best = max(qualified or scored, key=lambda x: x[1])
    return {"fusion": best[2], "mean": best[1], "meets_baselines": best[0], "qualified": len(qualified)}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Defaults study (passages cut to {report['tokens']} tokens)", ""]
    lines.append(
        "Dev data only (see research/study_cache.py): SciFact train query positions 0-99 and 150-249 with a "
        "judged-relevant document in BM25's top 20 (nDCG@10 over the 20, laid out best-last), HotpotQA dev rows "
        "0-99 (recall@2, random layout). Cells: SciFact / HotpotQA."
    )
    for model, data in report["models"].items():
        counts = data["counts"]
        lines += ["", f"## {model} ({counts['rerank']} SciFact queries, {counts['multihop']} HotpotQA questions)", ""]
        fused = data["head_sets"].get("fused", {})
        lines += [
            f"### Head sets, alone and at the model's default fusion ({data['head_sets'].get('fusion', '')})",
            "",
            "| head set | SciFact nDCG@10 alone / fused | HotpotQA recall@2 alone / fused |",
            "|---|---|---|",
        ]
        for name, row in data["head_sets"]["rows"].items():
            with_fusion = fused.get(name)
            cells = [f"{row[t]:.3f}" + ("" if with_fusion is None else f" / {with_fusion[t]:.3f}") for t in TASKS]
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
        for i, paths in enumerate(data["head_sets"]["greedy_paths"], start=1):
            sizes = ", ".join(f"{name}: {p['size']}" for name, p in paths.items())
            lines.append(f"\nGreedy set sizes, fold {i}: {sizes}.")
        lines += ["", "### Fusion (first-stage weight / lexical share), default heads", ""]
        lexes = sorted({k.split("/")[1] for k in data["fusion"]["cells"]}, key=float)
        weights = sorted({k.split("/")[0] for k in data["fusion"]["cells"]}, key=float)
        lines += ["| first stage \\ lexical | " + " | ".join(lexes) + " |", "|---" * (len(lexes) + 1) + "|"]
        for w in weights:
            cells = [data["fusion"]["cells"].get(f"{w}/{lex}") for lex in lexes]
            lines.append(
                f"| {w} | "
                + " | ".join("" if c is None else f"{c['rerank']:.3f} / {c['multihop']:.3f}" for c in cells)
                + " |"
            )
        free = ", ".join(
            f"{k}: {v['rerank']:.3f} / {v['multihop']:.3f}" for k, v in data["fusion"]["model_free"].items()
        )
        lines.append(f"\nModel-free fusion of the first stage and BM25 (weights first/lexical): {free}.")
        if data["cuts"]:
            lines += ["", "### SciFact by prompt order and passage cut (the queries every cut of an order holds)", ""]
            lines += [
                "| order, cut | queries | QRHead | fused (model's default) | first stage |",
                "|---|---|---|---|---|",
            ]
            for name, row in data["cuts"].items():
                lines.append(
                    f"| {name} | {int(row['queries'])} | {row['qrhead']:.3f} | {row['fused']:.3f} "
                    f"| {row['first stage']:.3f} |"
                )
        if data.get("multihop_cuts"):
            lines += ["", "### HotpotQA by passage cut (random layout; the rows every cut holds)", ""]
            lines += [
                "| cut | rows | QRHead | fused (model's default) | rows 60-99: QRHead / fused "
                "| BM25 over the candidates |",
                "|---|---|---|---|---|---|",
            ]
            for name, row in data["multihop_cuts"].items():
                lines.append(
                    f"| {name} | {int(row['rows'])} | {row['qrhead']:.3f} | {row['fused']:.3f} "
                    f"| {row['tune qrhead']:.3f} / {row['tune fused']:.3f} | {row['BM25 over the candidates']:.3f} |"
                )
        if data.get("multihop_orders"):
            lines += ["", "### HotpotQA by prompt layout, 128 tokens (the rows every layout holds)", ""]
            lines += ["| layout | rows | QRHead | fused (model's default) |", "|---|---|---|---|"]
            for name, row in data["multihop_orders"].items():
                lines.append(f"| {name} | {int(row['rows'])} | {row['qrhead']:.3f} | {row['fused']:.3f} |")
    choice = report["choice"]
    lines += [
        "",
        "## Choice",
        "",
        f"Fusion {choice['fusion']} (first-stage weight / lexical share; fixed-weight grid): mean "
        f"{choice['mean']:.3f} over models and tasks; at or above both model-free baselines everywhere: "
        f"{choice['meets_baselines']} ({choice['qualified']} cells qualify). The shipped default also scales the "
        "first stage's weight by its agreement with BM25, chosen on the same data by research/study_order_gate.py.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
