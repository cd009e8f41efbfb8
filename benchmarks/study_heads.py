"""Head detection for the bundled models and the ablation of issue #3, in one command.

For each model, every head's calibrated per-passage scores are computed once per example (the engine's ``"all"``
head set, full depth) and cached; every head set below is then evaluated from those cached scores, because a
head set's score is the mean of its heads' per-head scores (exact: the outlier filter is off by default).

Data (disjoint detection / evaluation slices):

* ``multihop``: HotpotQA dev rows 0-99 detect (0-79 score the heads, 80-99 choose how many / which), rows
  100-199 evaluate (recall@2, recall@5).
* ``rerank``: SciFact train queries in id order with a judged-relevant passage in BM25's top-20: the first 40
  detect (32 score, 8 choose), the 40 after the first 100 evaluate (nDCG@10 over the top-20); passages cut
  to 128 tokens (≈2.7K-token prompts) to keep the study within an afternoon on 2 CPU cores.

Candidate orders evaluated: ``retriever`` (BM25's order reversed: its best passage last, next to the query, as
the reference code does; for HotpotQA, BM25 over the question's own 10 passages) and ``shuffled`` (seeded) — small
models prefer passages next to the query, so a gain must survive the shuffled order. Detection itself always
uses the seeded shuffle (:func:`qrhead_integrations.detect.score_heads`).

Head sets compared: detected (chosen on the validation slice among top-4/8/16/32 by QR score and the best
layer), the top-16 by QR score, the best single layer, all heads (ICR), 16 random heads (10 seeds), each in-task
and cross-task; BM25 beside them.

    python benchmarks/study_heads.py --json reports/heads_study.json --markdown reports/heads_study.md \\
        --presets-out qrhead_integrations/presets/bundled.json
"""

from __future__ import annotations

import argparse
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import write_reports
from tqdm import tqdm

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.evaluation import (
    BM25Index,
    beir_candidates,
    bm25_rank,
    rank_indices,
    read_beir,
    read_multihop_jsonl,
)
from qrhead_integrations.heads import HeadSet

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
HOTPOTQA = SHARED / "hotpotqa" / "hotpotqa_dev200.jsonl"
SCIFACT = SHARED / "scifact"
MODELS = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct")
RERANK_CANDIDATES = 20
PASSAGE_TOKENS = 128
SHUFFLE_SEED = 0
RANDOM_SEEDS = 10


@dataclass
class Example:
    question: str
    passages: list[Any]
    gold: list[int]
    bm25: list[float]


def load_examples() -> dict[str, list[Example]]:
    """The four slices: ``<task>/detect`` and ``<task>/eval``."""
    hotpot = read_multihop_jsonl(HOTPOTQA, limit=200)
    dataset = read_beir(SCIFACT, split="train")
    index = BM25Index(dataset.corpus)
    scifact = beir_candidates(dataset, top_k=RERANK_CANDIDATES, index=index)

    def wrap(rows: list[Any], bm25: bool) -> list[Example]:
        out = []
        for r in rows:
            scores = bm25_rank(r.question, r.passages) if bm25 else [-float(i) for i in range(len(r.passages))]
            out.append(Example(r.question, list(r.passages), list(r.gold), scores))
        return out

    return {
        "multihop/detect": wrap(hotpot[:100], True),
        "multihop/eval": wrap(hotpot[100:160], True),
        # BEIR candidates are already in BM25 order: their "BM25 score" is minus the rank.
        "rerank/detect": wrap(scifact[:40], False),
        "rerank/eval": wrap(scifact[100:140], False),
    }


def prompt_order(example: Example, order: str, rng: random.Random) -> list[int]:
    """Indices of the example's passages in prompt order."""
    if order == "retriever":
        return rank_indices(example.bm25)[::-1]  # retriever's best passage last
    indices = list(range(len(example.passages)))
    rng.shuffle(indices)
    return indices


def dump(scorer: QRHeadScorer, examples: list[Example], order: str, path: Path) -> list[torch.Tensor]:
    """All-head per-head scores ``(heads, passages)`` of each example, in the example's own passage order.

    Cached in ``path``, saved every few examples so an interrupted run resumes where it stopped.
    """
    done: list[torch.Tensor] = torch.load(path) if path.exists() else []
    rng = random.Random(SHUFFLE_SEED)
    orders = [prompt_order(e, order, rng) for e in examples]  # drawn for all, so resuming keeps the same orders
    for i in tqdm(range(len(done), len(examples)), desc=path.stem, initial=len(done), total=len(examples)):
        perm = orders[i]
        per_head = scorer.score_per_head(examples[i].question, [examples[i].passages[j] for j in perm])
        back = torch.empty_like(per_head)
        back[:, perm] = per_head
        done.append(back.float())
        if len(done) % 5 == 0 or len(done) == len(examples):
            tmp = path.with_suffix(".tmp")
            torch.save(done, tmp)
            os.replace(tmp, path)
    return done


def evaluate(per_head: list[torch.Tensor], examples: list[Example], heads: list[int], task: str) -> float:
    """Mean recall@2 (multihop) or nDCG@10 (rerank) of the head subset (flat indices) on the examples."""
    values = []
    for scores, example in zip(per_head, examples, strict=True):
        ranking = rank_indices(scores[heads].mean(0).tolist())
        values.append(_metric(ranking, example.gold, task))
    return float(np.mean(values))


def _metric(ranking: list[int], gold: list[int], task: str) -> float:
    if task == "multihop":
        return len(set(ranking[:2]) & set(gold)) / len(gold)
    dcg = sum(1 / np.log2(r + 2) for r, i in enumerate(ranking[:10]) if i in gold)
    ideal = sum(1 / np.log2(r + 2) for r in range(min(10, len(gold))))
    return float(dcg / ideal)


def flat(heads: HeadSet, num_heads: int) -> list[int]:
    return [layer * num_heads + head for layer, head in heads]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "qrhead-integrations" / "study")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--presets-out", type=Path, help="write the detected sets into this presets file")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    slices = load_examples()
    report: dict[str, Any] = {"info": {"slices": {k: len(v) for k, v in slices.items()}}, "models": {}}
    models = args.models.split(",")
    scorers = {m: QRHeadScorer.from_pretrained(m, heads="all", max_passage_tokens=PASSAGE_TOKENS) for m in models}
    # Detection slices of every model first (they make the shipped sets), then the evaluation slices.
    jobs = [(name, "shuffled") for name in slices if name.endswith("detect")]
    jobs += [(name, order) for name in slices if name.endswith("eval") for order in ("retriever", "shuffled")]
    cached: dict[tuple[str, str, str], list[torch.Tensor]] = {}
    for name, order in jobs:
        for model in models:
            path = args.cache / f"{model}_{name.replace('/', '_')}_{order}.pt"
            cached[(model, name, order)] = dump(scorers[model], slices[name], order, path)
    del cached

if __name__ == "__main__":
    main()
