"""Per-position calibration, checked on dev data (issue #13, position bias): a cheaper correction than ``debias``.

The idea: a model pays some prompt positions more attention whatever they hold, so subtracting each position's
mean (query-centred) score, learned on dev queries, could remove that bias without a second forward. Measured
from the all-head caches of ``study_cache.py`` (no model runs here), each model's default heads, two-fold
cross-validation (offsets learned on alternate queries, applied to the others, both ways, averaged):

* HotpotQA dev rows 0-99 in a random layout (``shuffled`` cache): position carries no relevance here, so any
  gain is bias removed;
* SciFact dev queries laid out best-last (``reversed`` cache, the product's layout of a ranked list): position
  and first-stage rank coincide, so offsets also learn a first-stage prior (which fusion already provides).

Each as QRHead alone and at the model's default fusion (what the adapters return).

    python research/study_position_calibration.py --model smollm2-135m-instruct \\
        --model qwen2.5-coder-0.5b-instruct --model qwen2.5-coder-1.5b-instruct \\
        --json reports/position_calibration.json --markdown reports/position_calibration.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from _report import write_reports
from study_cache import ORDER_NAMES, DevExample, dev_examples, study_parser
from study_defaults import PRODUCT_CACHE, TASKS, default_heads, load, metric

from qrhead_integrations.evaluation.runner import prompt_order
from qrhead_integrations.fusion import Fusion, fuse_with_first_stage, model_fusion

Row = tuple[DevExample, np.ndarray, np.ndarray]
"""One dev query: the example, its default-heads scores (candidate order), each candidate's prompt position."""


def rows_of(model: str, task: str, tokens: int, cache_dir: Path) -> list[Row]:
    scores = load(model, task, PRODUCT_CACHE[task], tokens, cache_dir)
    if scores is None:
        return []
    heads = default_heads(model)
    out: list[Row] = []
    for example in dev_examples(task):
        if example.key not in scores:
            continue
        perm = prompt_order(len(example.passages), ORDER_NAMES[PRODUCT_CACHE[task]], key=example.key)
        position = np.empty(len(perm), dtype=int)
        position[perm] = np.arange(len(perm))
        out.append((example, scores[example.key].double()[heads].mean(dim=0).numpy(), position))
    return out


def offsets(rows: list[Row]) -> np.ndarray:
    """Mean query-centred score of each prompt position over ``rows``."""
    width = max(len(s) for _, s, _ in rows)
    total, count = np.zeros(width), np.zeros(width)
    for _, score, position in rows:
        np.add.at(total, position, score - score.mean())
        np.add.at(count, position, 1)
    return total / np.maximum(count, 1)


def mean_metric(rows: list[Row], name: str, fusion: Fusion | None, shift: np.ndarray | None) -> float:
    values = []
    for example, score, position in rows:
        adjusted = score - shift[position] if shift is not None else score
        ranking = adjusted.tolist()
        if fusion is not None:
            ranking = fuse_with_first_stage(ranking, fusion, lexical_scores=example.local_bm25)
        values.append(metric(ranking, tuple(example.gold), name))
    return float(np.mean(values))


def study(model: str, tokens: int, cache_dir: Path) -> dict[str, Any]:
    fusion = model_fusion(model)
    out: dict[str, Any] = {"fusion": None if fusion is None else [fusion.weight, fusion.lexical]}
    for task, name in TASKS.items():
        rows = rows_of(model, task, tokens, cache_dir)
        if len(rows) < 10:
            continue
        halves = (rows[0::2], rows[1::2])
        cells: dict[str, float] = {}
        for label, chosen in (("alone", None), ("default fusion", fusion)):
            plain = [mean_metric(held, name, chosen, None) for held in halves]
            calibrated = [
                mean_metric(held, name, chosen, offsets(fit)) for fit, held in zip(halves[::-1], halves, strict=True)
            ]
            cells[f"{label}: as is"] = float(np.mean(plain))
            cells[f"{label}: position-calibrated"] = float(np.mean(calibrated))
        out[task] = {"queries": len(rows), "metric": name, "figures": cells}
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Per-position calibration (dev data, two-fold cross-validation)",
        "",
        f"Command: `{report['command']}`",
        "",
        "Each prompt position's mean query-centred score, learned on half the dev queries, subtracted on the other "
        "half (both ways, averaged); default heads; HotpotQA dev rows 0-99 in a random layout (recall@2), SciFact "
        "dev queries best-last (nDCG@10 over BM25's top 20).",
        "",
        "| model | task | queries | alone | alone, calibrated | default fusion | fusion, calibrated |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, data in report["models"].items():
        for task in TASKS:
            if task not in data:
                continue
            f = data[task]["figures"]
            lines.append(
                f"| {model} | {task} | {data[task]['queries']} | {f['alone: as is']:.3f} | "
                f"{f['alone: position-calibrated']:.3f} | {f['default fusion: as is']:.3f} | "
                f"{f['default fusion: position-calibrated']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    args = study_parser(__doc__).parse_args()
    command = "python research/study_position_calibration.py " + " ".join(f"--model {m}" for m in args.model)
    report = {"command": command, "models": {m: study(m, args.tokens, args.cache_dir) for m in args.model}}
    text = markdown(report)
    print(text)
    write_reports(report, text, args.json, args.markdown)


if __name__ == "__main__":
    main()
