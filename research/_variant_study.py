"""What the dev-cache studies with one row per variant share: the splits, a row's figures, the table and main.

Each such study (``study_query_side``, ``study_calibration_strength``, ``study_length_norm``,
``study_head_aggregation``) reports, per model and task, each variant's figure alone and at the model's default
fusion; only how a variant's scores are made differs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _report import write_reports
from study_cache import DevExample, dev_examples, study_parser
from study_defaults import TASKS, DevScores, add_unseen_only, figure, items

from qrhead_integrations.fusion import Fusion

Study = Callable[[str, bool, int, Path, dict[str, list[DevExample]]], dict[str, Any]]
"""``(model, unseen, tokens, cache_dir, examples) -> {task: table entry}``."""


def splits_of(task: str, unseen: bool) -> list[str]:
    """The dev splits a task is judged on: SciFact's ``tune`` alone where the heads were detected on ``select``."""
    return ["tune"] if unseen and task == "rerank" else ["select", "tune"]


def alone_and_fused(data: list[DevScores], heads: list[int], name: str, fusion: Fusion | None) -> dict[str, float]:
    """The head set's ``name`` on ``data``, alone and at ``fusion``."""
    return {"alone": figure(data, heads, name), "fused": figure(data, heads, name, fusion)}


def task_entry(
    task: str,
    kept: list[DevExample],
    splits: list[str],
    variants: dict[str, dict[str, torch.Tensor]],
    heads: list[int],
    fusion: Fusion | None,
) -> dict[str, Any]:
    """A task's table entry: each variant's per-head scores (by example key) on the ``kept`` examples of
    ``splits``, alone and fused, with the query count, splits and metric."""
    name = TASKS[task]
    rows, queries = {}, 0
    for label, scores in variants.items():
        data: list[DevScores] = [d for split in splits for d in items(kept, scores, split)]
        rows[label] = alone_and_fused(data, heads, name, fusion)
        queries = len(data)
    return {"queries": queries, "splits": splits, "metric": name, "rows": rows}


def task_column(task: str, entry: dict[str, Any], extra: str = "") -> str:
    """A table column's heading: the task, its metric, how many queries and from which splits (then ``extra``)."""
    title = "SciFact" if task == "rerank" else "HotpotQA"
    return f"{title} {entry['metric']} ({entry['queries']}, {'+'.join(entry['splits'])}{extra})"


def markdown(
    report: dict[str, Any],
    *,
    title: str,
    intro: str,
    row_heading: str,
    column: Callable[[str, dict[str, Any]], str] = task_column,
) -> str:
    """One table per model: a row per variant (in the order the study made them), alone / fused per task."""
    lines = [f"# {title}", "", intro]
    for model, tasks in report["models"].items():
        columns = [column(task, entry) for task, entry in tasks.items()]
        lines += [
            "",
            f"## {model}",
            "",
            f"| {row_heading} | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(tasks),
        ]
        for label in next(iter(tasks.values()))["rows"]:
            cells = [f"{t['rows'][label]['alone']:.3f} / {t['rows'][label]['fused']:.3f}" for t in tasks.values()]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(doc: str | None, study: Study, render: Callable[[dict[str, Any]], str]) -> None:
    """Parse the cache-reading studies' options, run ``study`` for every model, write and print the report."""
    parser = study_parser(doc)
    add_unseen_only(parser)
    args = parser.parse_args()
    examples = {task: dev_examples(task) for task in TASKS}
    report = {"models": {m: study(m, m in args.unseen_only, args.tokens, args.cache_dir, examples) for m in args.model}}
    text = render(report)
    write_reports(report, text, json_path=args.json, markdown_path=args.markdown)
    print(text)
