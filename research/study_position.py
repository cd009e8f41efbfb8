"""Why a head set wins in BM25's order but not shuffled: how often its top passage is the one next to the query.

Reads the per-head score cache that ``research/study_heads.py`` writes (run it first; nothing is recomputed) and,
for the detected sets, all heads and the study's 10 random 16-head sets, reports per evaluation slice and
candidate order: the study's metric, the share of queries whose top-ranked passage is the **last one in the prompt**
(next to the query) and the share whose top passage is **BM25's best**. In the "retriever" order both are the same
passage, so a head set that mostly follows position copies BM25's best guess and looks good against BM25-ordered
data for a reason that has nothing to do with reading the query; the shuffled order separates the two.

    python research/study_position.py --models qwen2.5-coder-0.5b-instruct \
        --markdown reports/heads_position_qwen.md
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
from study_heads import (
    DETECT_DATA,
    RANDOM_SEEDS,
    SHUFFLE_SEED,
    Example,
    _metric,
    flat,
    load_examples,
    prompt_order,
    scored,
)

from qrhead_integrations.detect import head_scores_table
from qrhead_integrations.evaluation import rank_indices
from qrhead_integrations.presets import get_preset

CACHE = Path.home() / ".cache" / "qrhead-integrations" / "study"
SHAPES = {"smollm2-135m-instruct": (30, 9), "qwen2.5-coder-0.5b-instruct": (24, 14)}


def _row(
    per_head: list[torch.Tensor], heads: list[int], examples: list[Example], last_in_prompt: list[int], task: str
) -> str:
    """``metric | top is last in prompt | top is BM25's best`` for one head set (means over the slice)."""
    metric, last, bm25_best = [], [], []
    for scores, example, last_index in zip(per_head, examples, last_in_prompt, strict=True):
        ranking = rank_indices(scores[heads].double().mean(dim=0).tolist())
        metric.append(_metric(ranking, example.gold, task))
        last.append(ranking[0] == last_index)
        bm25_best.append(ranking[0] == rank_indices(example.bm25)[0])
    return f"{np.mean(metric):.3f} | {np.mean(last):.2f} | {np.mean(bm25_best):.2f}"


def report(model: str, slices: dict[str, list[Example]]) -> list[str]:
    layers, n_heads = SHAPES[model]
    rng = np.random.default_rng(0)  # the study's random sets, drawn the same way
    randoms = [rng.choice(layers * n_heads, size=16, replace=False).tolist() for _ in range(RANDOM_SEEDS)]
    sets: dict[str, list[int]] = {}
    for name in ("multihop", "rerank"):
        preset = get_preset(model, name)
        if preset is not None:
            sets[f"detected {name} set"] = flat(preset, n_heads)
    detect_cache = CACHE / f"{model}_rerank_detect_shuffled.pt"
    if detect_cache.exists():  # other sizes from the re-rank detection table: is 16 the wrong number here?
        validation = DETECT_DATA["rerank"][1]
        items = scored(torch.load(detect_cache), slices["rerank/detect"])[:-validation]
        table = head_scores_table(items, method="qr_score", num_layers=layers, num_heads=n_heads)
        for k in (4, 8, 32):
            sets[f"top-{k} of the rerank table"] = flat(table.top(k), n_heads)
    sets["all heads (ICR)"] = list(range(layers * n_heads))
    lines = [f"## {model}", ""]
    for task in ("multihop", "rerank"):
        examples = slices[f"{task}/eval"]
        for order in ("retriever", "shuffled"):
            path = CACHE / f"{model}_{task}_eval_{order}.pt"
            if not path.exists():
                lines += [f"{task}/{order}: no cache ({path}); run research/study_heads.py first", ""]
                continue
            per_head: list[torch.Tensor] = torch.load(path)
            order_rng = random.Random(SHUFFLE_SEED)  # the permutations the cache was scored under, drawn once per slice
            last = [prompt_order(e, order, order_rng)[-1] for e in examples]
            metric = "recall@2" if task == "multihop" else "nDCG@10"
            lines += [
                f"**{task}/{order}** (n={len(examples)})",
                "",
                f"| head set | {metric} | top passage is the last in the prompt | top passage is BM25's best |",
                "|---|---|---|---|",
            ]
            lines += [f"| {name} | {_row(per_head, heads, examples, last, task)} |" for name, heads in sets.items()]
            lines += [
                f"| random 16 heads, seed {i} | {_row(per_head, h, examples, last, task)} |"
                for i, h in enumerate(randoms)
            ]
            lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(SHAPES))
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    slices = load_examples()
    lines = [
        "# Head sets and the passage next to the query",
        "",
        f"Command: `python research/study_position.py --models {args.models}"
        + (f" --markdown {args.markdown}`" if args.markdown else "`"),
        "",
    ]
    for model in args.models.split(","):
        lines += report(model, slices)
    text = "\n".join(lines)
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
