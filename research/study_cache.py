"""All-head score caches of the dev slices, for the defaults study (issue #13) — the expensive step, resumable.

Every head's calibrated per-passage scores are computed once per (model, task, prompt order, passage cut) on the
dev slices only, and saved; every default (head set, fusion, order, passage length) is then chosen from these
caches by ``research/study_defaults.py`` without running the model again (a head set's score is the mean of
its heads' scores, exact while the outlier filter is off).

Dev slices (disjoint from the evaluation rows of docs/results.md: HotpotQA 100-199, SciFact train 100-149):

* ``multihop``: HotpotQA dev rows 0-99, candidates in file order (the file's order carries no ranking: gold
  positions are uniform) — ``select`` = rows 0-59, ``tune`` = rows 60-99.
* ``rerank``: SciFact train queries in query-id order, BM25 top-20 over the whole corpus (as ``qrhead eval beir``),
  positions 0-99 (``select``) and 150-249 (``tune``), only queries with a judged-relevant document in the top 20
  (the others score 0 whatever the re-ranker does, so they cannot inform a choice).

Prompt orders: ``reversed`` (the candidates' first-stage best last, next to the query), ``as_given`` (best
first), ``shuffled`` (seeded per query, as ``qrhead eval --order shuffled``). Scores are stored in candidate
(first-stage) order whatever the prompt order.

    python research/study_cache.py --model smollm2-135m-instruct --task rerank --order reversed --tokens 128

One file per configuration under ``--cache-dir`` (default ``~/.cache/qrhead-study``), saved every few queries.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from qrhead_integrations import QRHeadScorer, prompt
from qrhead_integrations.evaluation import BM25Index, beir_candidates, read_beir, read_multihop_jsonl
from qrhead_integrations.evaluation.runner import prompt_order
from qrhead_integrations.lexical import bm25_rank
from qrhead_integrations.prompt import OPENING

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
HOTPOTQA = SHARED / "hotpotqa" / "hotpotqa_dev200.jsonl"
SCIFACT = SHARED / "scifact"
CACHE = Path(os.environ.get("QRHEAD_STUDY_CACHE", Path.home() / ".cache" / "qrhead-study"))
TOP_K = 20
ORDER_NAMES = {"reversed": "retriever-reversed", "as_given": "retriever", "shuffled": "shuffled"}


@dataclass
class DevExample:
    """One dev query: candidates in first-stage order, gold indices, BM25 scores over the candidates alone."""

    key: str
    split: str
    question: str
    passages: list[Any]
    gold: list[int]
    local_bm25: list[float]


def dev_examples(task: str) -> list[DevExample]:
    """The dev slices of ``task`` (see the module docstring), ``select`` first, then ``tune``."""
    out: list[DevExample] = []
    if task == "multihop":
        rows = read_multihop_jsonl(HOTPOTQA, limit=100)
        for i, row in enumerate(rows):
            local = bm25_rank(row.question, row.passages)
            split = "select" if i < 60 else "tune"
            out.append(DevExample(row.id, split, row.question, list(row.passages), list(row.gold), local))
        return out
    dataset = read_beir(SCIFACT, split="train")
    index = BM25Index(dataset.corpus)
    for split, start, limit in (("select", 0, 100), ("tune", 150, 100)):
        for row in beir_candidates(dataset, top_k=TOP_K, start=start, limit=limit, index=index):
            local = bm25_rank(row.question, row.passages)
            out.append(DevExample(row.id, split, row.question, list(row.passages), list(row.gold), local))
    return out


@dataclass(frozen=True)
class CacheVariant:
    """The scorer settings a cache may be built with besides the product's (defaults: the product's own).

    ``query_first`` is a prototype layout, not a scorer option: the query is also stated before the passages
    (``Query: ...`` ahead of the opening line), so the passages' tokens are read in its light; the "N/A" tail
    shares that prefix. :func:`build` sets it by swapping ``prompt.OPENING`` per query (the window budget's
    count of the opening is then a few tokens short, which 20 cut passages never come near).
    """

    query_part: str = "all"
    calibrate: bool = True
    query_first: bool = False

    @property
    def suffix(self) -> str:
        """The file-name suffix (none for the product's settings: the names caches always had)."""
        return (
            ("" if self.query_part == "all" else f"__{self.query_part}")
            + ("" if self.calibrate else "__raw")
            + ("__qfirst" if self.query_first else "")
        )

    @property
    def flags(self) -> str:
        """This script's command-line flags that build this variant."""
        return (
            ("" if self.query_part == "all" else f" --query-part {self.query_part}")
            + ("" if self.calibrate else " --uncalibrated")
            + (" --query-first" if self.query_first else "")
        )


PRODUCT = CacheVariant()


def cache_path(
    cache_dir: Path, model: str, task: str, order: str, tokens: int | None, variant: CacheVariant = PRODUCT
) -> Path:
    return cache_dir / f"{model}__{task}__{order}__{tokens or 'full'}{variant.suffix}.pt"


def build(
    model: str,
    task: str,
    order: str,
    tokens: int | None,
    cache_dir: Path,
    split: str | None = None,
    variant: CacheVariant = PRODUCT,
) -> Path:
    """Fill (or resume) one cache file; returns its path."""
    path = cache_path(cache_dir, model, task, order, tokens, variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    examples = dev_examples(task)
    state: dict[str, Any] = torch.load(path) if path.exists() else {"scores": {}, "seconds": {}}
    todo = [e for e in examples if e.key not in state["scores"] and (split is None or e.split == split)]
    if not todo:
        return path
    # order="as_given": the permutation above IS the prompt order. The scorer's own default ("reversed") would
    # reverse it again: caches built that way between the default's change and this fix hold the mirrored
    # layout (see docs/results.md, "A layout error in the dev caches").
    scorer = QRHeadScorer.from_pretrained(
        model,
        heads="all",
        max_passage_tokens=tokens,
        order="as_given",
        query_part=variant.query_part,
        calibrate=variant.calibrate,
    )
    for n, example in enumerate(tqdm(todo, desc=path.stem, unit="q"), start=1):
        perm = prompt_order(len(example.passages), ORDER_NAMES[order], key=example.key)
        started = time.perf_counter()
        if variant.query_first:
            prompt.OPENING = f"Query: {example.question}\n\n{OPENING}"
        try:
            per_head = scorer.score_per_head(example.question, [example.passages[i] for i in perm])
        finally:
            prompt.OPENING = OPENING
        state["seconds"][example.key] = time.perf_counter() - started
        back = torch.empty_like(per_head)
        back[:, perm] = per_head
        state["scores"][example.key] = back.to(torch.float32)
        if n % 5 == 0 or n == len(todo):
            tmp = path.with_suffix(".tmp")
            torch.save(state, tmp)
            os.replace(tmp, path)
    return path


def study_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every cache-reading study takes: models, cut, cache folder and report paths."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    return parser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", choices=("multihop", "rerank"), required=True)
    parser.add_argument("--order", choices=tuple(ORDER_NAMES), required=True)
    parser.add_argument("--tokens", type=int, default=None, help="max_passage_tokens (default: no cut)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--split", choices=("select", "tune"), default=None, help="fill one dev split only")
    parser.add_argument(
        "--query-part", choices=("all", "query"), default="all", help="the scorer's query_part (default: all)"
    )
    parser.add_argument(
        "--uncalibrated", action="store_true", help="calibrate=False: the query's attention alone (no 'N/A' pass)"
    )
    parser.add_argument(
        "--query-first", action="store_true", help="prototype layout: the query also stated before the passages"
    )
    args = parser.parse_args()
    variant = CacheVariant(args.query_part, not args.uncalibrated, args.query_first)
    path = build(args.model, args.task, args.order, args.tokens, args.cache_dir, args.split, variant)
    print(path)


if __name__ == "__main__":
    main()
