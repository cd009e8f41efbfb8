"""Long-context compression on HotpotQA: do both gold passages survive a 25% token budget?

Each question's 10 passages are concatenated into one document (``title. text`` paragraphs). Selectors keep
chunks under the same budget (25% of the document's tokens by default) with the same selection rules: the
compressor with every default (``default``), QRHead scores alone, QRHead fused with BM25 at several lexical
shares (``qrhead+bm25@w``: ranks, the compressor's form; ``qrhead+bm25@w z``: per-query z-scores,
``Fusion(form="scores")``), BM25 scores of the same chunks, and truncation (the first chunks, in order). A gold
passage "survives" when at least half of its characters are inside kept chunks. Rows 0-99 choose the lexical
share (dev), rows 100-199 report it.

    python benchmarks/eval_compression.py --model qwen2.5-coder-0.5b-instruct --start 0 --limit 100 \\
        --json reports/compression_dev_qwen.json --markdown reports/compression_dev_qwen.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from _report import relative, write_reports
from tqdm import tqdm

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.compress import DEFAULT_COMPRESSOR_LEXICAL, ContextCompressor, ScoredChunk
from qrhead_integrations.evaluation import bm25_rank, read_multihop_jsonl
from qrhead_integrations.fusion import Fusion, FusionForm, fuse_with_first_stage
from qrhead_integrations.prompt import PromptBuilder

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpotqa_dev200.jsonl"
FORMS: tuple[tuple[str, FusionForm], ...] = (("", "ranks"), (" z", "scores"))
"""The fusion forms compared at each lexical share (system-name suffix, ``Fusion.form``)."""


def _document(example: Any) -> tuple[str, list[tuple[int, int]]]:
    """The concatenated document and each passage's character span in it."""
    parts, spans, cursor = [], [], 0
    for passage in example.passages:
        block = f"{passage.title}. {passage.text}" if passage.title else passage.text
        spans.append((cursor, cursor + len(block)))
        parts.append(block)
        cursor += len(block) + 2
    return "\n\n".join(parts), spans


def _survived(kept: list[ScoredChunk], span: tuple[int, int]) -> bool:
    start, end = span
    covered = sum(max(0, min(end, k.chunk.end) - max(start, k.chunk.start)) for k in kept)
    return covered >= 0.5 * (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--heads", default=None)
    parser.add_argument("--dtype", default=None, help="float32, bfloat16 (default: the machine's, resolve_dtype)")
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument(
        "--lexical-grid",
        default="0.2,0.3,0.4,0.5",
        help="lexical shares to compare (each a system qrhead+bm25@w, from the same QRHead scores)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    examples = read_multihop_jsonl(args.data, limit=args.limit, start=args.start)
    scorer = QRHeadScorer.from_pretrained(args.model, heads=args.heads, dtype=args.dtype)
    builder = PromptBuilder(scorer.tokenizer, scorer.config.layout)  # counts tokens as the scorer does
    grid = [float(w) for w in args.lexical_grid.split(",") if w.strip()]
    fused_systems = [(f"qrhead+bm25@{w}{suffix}", w, form) for w in grid for suffix, form in FORMS]
    systems = ("default", "qrhead", *(name for name, _, _ in fused_systems), "bm25", "truncation")
    both = dict.fromkeys(systems, 0)
    single = dict.fromkeys(systems, 0)
    ratios: dict[str, list[float]] = {s: [] for s in systems}
    seconds = 0.0
    for example in tqdm(examples, desc="compress"):
        document, spans = _document(example)
        budget = max(1, int(args.fraction * builder.count_tokens(document)))
        compressor = ContextCompressor(scorer, budget_tokens=budget)  # every default, as the adapters use it
        started = time.perf_counter()
        result = compressor.compress(example.question, document)
        seconds += time.perf_counter() - started
        chunks = result.chunks
        qrhead = [c.score for c in chunks]
        bm25 = bm25_rank(example.question, [c.chunk.text for c in chunks])

        def ranked_by(values: list[float], chunks: list[ScoredChunk] = chunks) -> list[ScoredChunk]:
            return [ScoredChunk(c.chunk, c.score, c.tokens, fused=v) for c, v in zip(chunks, values, strict=True)]

        selections = {
            "default": result.kept,
            "qrhead": compressor.select(ranked_by(qrhead)),
            "bm25": compressor.select(ranked_by(bm25)),
            "truncation": compressor.select(ranked_by([-float(i) for i in range(len(chunks))])),
        }
        for name, w, form in fused_systems:
            fused = fuse_with_first_stage(qrhead, Fusion(weight=0.0, lexical=w, form=form), lexical_scores=bm25)
            selections[name] = compressor.select(ranked_by(fused))
        for system, kept in selections.items():
            survived = [_survived(kept, spans[g]) for g in example.gold]
            both[system] += int(all(survived))
            single[system] += sum(survived)
            kept_tokens = compressor.count_tokens(compressor.separator.join(k.chunk.text for k in kept))
            ratios[system].append(kept_tokens / max(1, result.original_tokens))
    n = len(examples)
    gold_total = sum(len(e.gold) for e in examples)
    report = {
        "info": {
            "command": "python benchmarks/eval_compression.py "
            + " ".join(
                f"--{k.replace('_', '-')} {relative(v)}"
                for k, v in vars(args).items()
                if v is not None and k not in ("json", "markdown")
            ),
            "default_lexical": DEFAULT_COMPRESSOR_LEXICAL,
            "model": args.model,
            "heads": str(scorer.heads),
            "dtype": str(scorer.dtype).removeprefix("torch."),
            "questions": n,
            "split": f"HotpotQA dev200 rows {args.start}..{args.start + n - 1}",
            "budget_fraction": args.fraction,
            "qrhead_seconds_per_question": seconds / max(1, n),
        },
        "metrics": {
            s: {
                "both_gold_kept": both[s] / n,
                "gold_kept": single[s] / gold_total,
                "mean_kept_ratio": sum(ratios[s]) / n,
            }
            for s in systems
        },
    }
    lines = [
        "# Compression to 25% of the tokens: gold passages kept",
        "",
        f"Command: `{report['info']['command']}`  ",
        f"Data: {report['info']['split']} ({n} questions); model {args.model}, heads `{scorer.heads}`; "
        f"QRHead {report['info']['qrhead_seconds_per_question']:.2f} s/question. `default` is ContextCompressor "
        f"with every default (lexical share {DEFAULT_COMPRESSOR_LEXICAL}); `qrhead+bm25@w` fuses QRHead's chunk "
        "ranking with BM25's at lexical share w by ranks, `@w z` by per-query z-scores (same QRHead scores).",
        "",
        "| selector | both gold kept | gold passages kept | mean kept/original tokens |",
        "| --- | --- | --- | --- |",
    ]
    for system, m in report["metrics"].items():
        lines.append(f"| {system} | {m['both_gold_kept']:.3f} | {m['gold_kept']:.3f} | {m['mean_kept_ratio']:.3f} |")
    markdown = "\n".join(lines) + "\n"
    write_reports(report, markdown, args.json, args.markdown)
    print(markdown)


if __name__ == "__main__":
    main()
