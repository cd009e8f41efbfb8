"""End-to-end QA evaluation: what a reader LM answers from each context strategy, and how many tokens it read.

Rankings are a proxy; a RAG user judges answers and tokens. For each question the harness builds one context
per strategy and has the same reader answer from it (greedy, short answer):

* ``full`` — every passage in file order (the document); ``closed_book`` — none; ``gold`` — the supporting
  passages only (the ceiling a perfect selector reaches);
* ``qrhead@25%`` … — :class:`~qrhead_integrations.compress.ContextCompressor` with its defaults at a budget of
  that share of the document's tokens, counted in the *reader's* tokens; ``bm25@25%`` … — BM25 scores of the
  same chunks under exactly the same selection rules (:meth:`ContextCompressor.select`);
* ``qrhead_top2`` … — the re-ranker's top k passages (:meth:`QRHeadScorer.rank` with its defaults), in rank
  order; ``bm25_top2`` … — BM25's top k.

The document is the passages as ``title. text`` paragraphs, as the compression benchmark builds it. Scores are
exact match and token F1 (:mod:`.answers`) against the answer and its aliases; ``seconds`` is the reader's time
plus the strategy's own selection time (the QRHead scoring for ``qrhead`` strategies).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._checks import check_int
from ..compress import ContextCompressor, ScoredChunk
from ..errors import InvalidInputError, PromptTooLongError
from ..lexical import bm25_rank
from ..passages import Passage
from ..reader import Reader, ReaderAnswer
from ..scorer import QRHeadScorer
from .answers import best_scores, normalize_answer
from .qa_data import QAExample
from .report import EvalReport, paired_comparison

QA_METRICS = ("em", "f1", "reader_tokens", "context_tokens", "seconds")
"""Per-strategy means in the report: answer quality first, then cost."""
DIAGNOSTICS = ("answer_in_context", "gold_in_context")
"""Why an answer is right or wrong: the reference answer's presence in the context (normalised text), and the
share of gold passages kept whole. Reported where the rows hold them (rows of earlier versions do not)."""


@dataclass(frozen=True)
class QASettings:
    """What ``qrhead eval qa`` compares.

    Attributes:
        budgets: token budgets as shares of the full document (each gives ``qrhead@P%`` and ``bm25@P%``).
        top_k: passages kept by ``qrhead_top{k}`` and ``bm25_top{k}``.
        strategies: the strategy names to run (``None``: all); see :meth:`names`.
    """

    budgets: tuple[float, ...] = (0.25, 0.5)
    top_k: int = 2
    strategies: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        """Budgets are shares in (0, 1); k at least 1; strategy names known."""
        for share in self.budgets:
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
                raise InvalidInputError(f"budgets are shares of the document in (0, 1), got {share!r}")
        check_int(self.top_k, "top_k", minimum=1)
        if self.strategies is not None:
            unknown = [s for s in self.strategies if s not in self.all_names()]
            if unknown:
                raise InvalidInputError(f"unknown strategies {unknown}; known: {', '.join(self.all_names())}")

    def all_names(self) -> list[str]:
        """Every strategy these budgets and k define, in report order."""
        percents = [budget_label(share) for share in self.budgets]
        return [
            "full",
            "closed_book",
            "gold",
            *(f"qrhead@{p}" for p in percents),
            *(f"bm25@{p}" for p in percents),
            f"qrhead_top{self.top_k}",
            f"bm25_top{self.top_k}",
        ]

    def names(self) -> list[str]:
        """The strategies that run."""
        chosen = self.all_names()
        return chosen if self.strategies is None else [s for s in chosen if s in self.strategies]


def budget_label(share: float) -> str:
    """A budget's name in strategy names: ``0.25`` -> ``"25%"``."""
    return f"{round(share * 100)}%"


def block(passage: Passage) -> str:
    """A passage as one paragraph of the document: ``title. text``."""
    return f"{passage.title}. {passage.text}" if passage.title else passage.text


def document(passages: Sequence[Passage]) -> str:
    """The full context: every passage as a paragraph, in order."""
    return "\n\n".join(block(p) for p in passages)


@dataclass(frozen=True)
class Context:
    """One strategy's context for one question and the seconds spent choosing it."""

    text: str | None
    select_seconds: float = 0.0


class ContextBuilder:
    """Builds every strategy's context for a question (the selection part of the harness)."""

    def __init__(self, scorer: QRHeadScorer, reader: Reader, settings: QASettings) -> None:
        self.scorer = scorer
        self.reader = reader
        self.settings = settings

    def contexts(self, example: QAExample) -> dict[str, Context]:
        """``{strategy: Context}`` for the strategies that run (``gold`` only when the row names gold passages)."""
        wanted = set(self.settings.names())
        full = document(example.passages)
        out: dict[str, Context] = {"full": Context(full), "closed_book": Context(None)}
        if example.gold:
            out["gold"] = Context(document([example.passages[i] for i in example.gold]))
        if any(name.startswith(("qrhead@", "bm25@")) for name in wanted):
            out.update(self._budgeted(example.question, full))
        k = self.settings.top_k
        if f"qrhead_top{k}" in wanted:
            started = time.perf_counter()
            ranked = self.scorer.rank(example.question, list(example.passages), top_n=k)
            top = document([example.passages[r.index] for r in ranked])
            out[f"qrhead_top{k}"] = Context(top, time.perf_counter() - started)
        if f"bm25_top{k}" in wanted:
            started = time.perf_counter()
            scores = bm25_rank(example.question, list(example.passages))
            order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
            out[f"bm25_top{k}"] = Context(document([example.passages[i] for i in order]), time.perf_counter() - started)
        return {name: out[name] for name in self.settings.names() if name in out}

    def _budgeted(self, question: str, full: str) -> dict[str, Context]:
        """``qrhead@P%`` and ``bm25@P%``: the QRHead chunk scores computed once, every budget selected from them."""
        total = self.reader.count_tokens(full)
        budgets = {budget_label(share): max(1, int(share * total)) for share in self.settings.budgets}
        smallest = min(budgets.values())
        compressor = self._compressor(smallest)
        started = time.perf_counter()
        result = compressor.compress(question, full)
        qrhead_seconds = time.perf_counter() - started
        started = time.perf_counter()
        bm25 = bm25_rank(question, [item.chunk.text for item in result.chunks]) if result.chunks else []
        by_bm25 = [ScoredChunk(c.chunk, c.score, c.tokens, fused=v) for c, v in zip(result.chunks, bm25, strict=True)]
        bm25_seconds = time.perf_counter() - started
        out: dict[str, Context] = {}
        for label, budget in budgets.items():
            chooser = compressor if budget == smallest else self._compressor(budget)
            out[f"qrhead@{label}"] = Context(_joined(chooser, chooser.select(result.chunks)), qrhead_seconds)
            out[f"bm25@{label}"] = Context(_joined(chooser, chooser.select(by_bm25)), bm25_seconds)
        return out

    def _compressor(self, budget: int) -> ContextCompressor:
        """The compressor with every default, at ``budget`` reader tokens."""
        return ContextCompressor(self.scorer, budget_tokens=budget, token_counter=self.reader.count_tokens)


def _joined(compressor: ContextCompressor, kept: list[ScoredChunk]) -> str:
    return compressor.separator.join(item.chunk.text for item in kept)


def answer_row(builder: ContextBuilder, example: QAExample) -> dict[str, dict[str, Any]]:
    """Every strategy's answer and scores for one question: ``{strategy: {answer, em, f1, ...}}``.

    A context too long for the reader's window is answered by nobody: the strategy scores 0 on that question
    and the row says ``too_long`` (the report counts them), so a reader with a short window is not silently
    compared on fewer questions. Strategies that chose the very same context (BM25 and QRHead often keep the
    same chunks) share one generation — greedy decoding would repeat it token for token — and each reports its
    measured seconds.
    """
    results: dict[str, dict[str, Any]] = {}
    answers: dict[str | None, ReaderAnswer] = {}  # greedy decoding: the same context gives the same answer
    for name, context in builder.contexts(example).items():
        context_tokens = 0 if context.text is None else builder.reader.count_tokens(context.text)
        try:
            if context.text not in answers:
                answers[context.text] = builder.reader.answer(example.question, context.text)
            answer = answers[context.text]
        except PromptTooLongError:
            tokens = len(builder.reader.prompt_ids(example.question, context.text))
            results[name] = {"answer": "", "em": 0.0, "f1": 0.0, "reader_tokens": tokens, "too_long": True}
            results[name] |= {"context_tokens": context_tokens, "seconds": round(context.select_seconds, 4)}
            continue
        em, f1 = best_scores(answer.text, example.answers)
        results[name] = {
            "answer": answer.text,
            "em": em,
            "f1": f1,
            "reader_tokens": answer.input_tokens,
            "context_tokens": context_tokens,
            "seconds": round(answer.seconds + context.select_seconds, 4),
            **diagnostics(example, context.text),
        }
    return results


def diagnostics(example: QAExample, context: str | None) -> dict[str, float]:
    """Whether the context holds a reference answer (normalised text) and which share of the gold passages whole.

    They separate a selector's miss (the answer is not there) from a reader's (it is there and was not read).
    """
    text = normalize_answer(context or "")
    padded = f" {text} "
    found = any(f" {normalize_answer(a)} " in padded for a in example.answers if normalize_answer(a))
    out = {"answer_in_context": float(found)}
    if example.gold:
        kept = sum(block(example.passages[i]) in (context or "") for i in example.gold)
        out["gold_in_context"] = kept / len(example.gold)
    return out


@dataclass
class Checkpoint:
    """Finished rows kept in a JSON Lines file as they finish, so an interrupted run resumes where it stopped.

    The first line holds the run's settings; a resumed run must have the same ones (else its rows would mix two
    configurations). Each later line is one finished question; an unfinished last line (a kill mid-write) is
    ignored.
    """

    path: Path
    settings: dict[str, Any]
    done: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def load(self) -> None:
        """Read the rows of an earlier run with the same settings (none when the file is absent)."""
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        if not lines:
            return
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("settings") != self.settings:
            raise InvalidInputError(
                f"{self.path} holds a run with other settings; delete it or choose another --output to start over"
            )
        for line in lines[1:]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a run killed mid-write
            if isinstance(row, dict) and isinstance(row.get("id"), str):
                self.done[row["id"]] = row["results"]

    def add(self, row_id: str, results: dict[str, dict[str, Any]]) -> None:
        """Append one finished row (flushed at once: Ctrl-C loses at most the question in progress)."""
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8") as handle:
            if fresh:
                handle.write(json.dumps({"settings": self.settings}, ensure_ascii=False) + "\n")
            handle.write(json.dumps({"id": row_id, "results": results}, ensure_ascii=False) + "\n")
            handle.flush()
        self.done[row_id] = results


def run_qa(
    builder: ContextBuilder,
    examples: Sequence[QAExample],
    *,
    info: dict[str, Any] | None = None,
    checkpoint: Checkpoint | None = None,
    show_progress: bool = False,
    on_row: Callable[[int], None] | None = None,
    answered_only: bool = False,
) -> QAReport:
    """Answer every question from every strategy's context and gather the report.

    Args:
        builder: the scorer, reader and settings.
        examples: the questions.
        info: run description merged into the report's ``info`` (data, command, ...).
        checkpoint: where finished rows are kept; rows it already holds are not run again.
        show_progress: a progress bar over questions.
        on_row: called with the number of finished rows after each one (tests interrupt with it).
        answered_only: report only the questions the checkpoint already holds, answering none (the partial report
            of an interrupted run; ``info["unanswered"]`` counts the rest).
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    done = checkpoint.done if checkpoint is not None else {}
    resumed = sum(1 for example in examples if example.id in done)
    bar = tqdm(examples, desc="qrhead eval qa", unit="question", disable=not show_progress)
    for example in bar:
        if example.id in done:
            rows[example.id] = done[example.id]
            continue
        if answered_only:
            continue
        rows[example.id] = answer_row(builder, example)
        if checkpoint is not None:
            checkpoint.add(example.id, rows[example.id])
        if on_row is not None:
            on_row(len(rows))
    report = build_report(rows, builder.settings.names())
    report.info.update(info or {})
    report.info.update(
        {
            "n_queries": len(rows),
            "resumed_rows": resumed,
            "unanswered": len(examples) - len(rows),
            "wall_seconds": round(time.perf_counter() - started, 2),
            "budgets": list(builder.settings.budgets),
            "top_k": builder.settings.top_k,
            "reader_max_new_tokens": builder.reader.max_new_tokens,
            "gold_rows": sum(1 for row in rows.values() if "gold" in row),
            "too_long": {
                name: count
                for name in builder.settings.names()
                if (count := sum(1 for row in rows.values() if row.get(name, {}).get("too_long")))
            },
        }
    )
    return report


@dataclass
class QAReport(EvalReport):
    """An :class:`EvalReport` whose systems are context strategies, with every answer kept.

    Attributes:
        answers: ``{strategy: {question id: answer}}`` for error analysis.
        comparisons: paired comparisons on F1 (strategy vs ``full``; ``qrhead`` vs ``bm25`` at each budget and k).
    """

    answers: dict[str, dict[str, str]] = field(default_factory=dict)
    comparisons: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON shape: the ranking reports' keys plus ``answers`` and ``comparisons``."""
        return {**super().to_dict(), "comparisons": self.comparisons, "answers": self.answers}


def build_report(rows: dict[str, dict[str, dict[str, Any]]], strategies: Sequence[str]) -> QAReport:
    """Means per strategy over the rows that have it, per-question values, answers and paired comparisons."""
    report = QAReport(metrics={})
    for name in strategies:
        per = {qid: row[name] for qid, row in rows.items() if name in row}
        if not per:
            continue
        report.per_query[name] = {qid: {m: float(v[m]) for m in QA_METRICS} for qid, v in per.items()}
        report.metrics[name] = {m: round(sum(v[m] for v in per.values()) / len(per), 4) for m in QA_METRICS}
        for diagnostic in DIAGNOSTICS:
            values = [float(v[diagnostic]) for v in per.values() if diagnostic in v]
            if values:
                report.metrics[name][diagnostic] = round(sum(values) / len(values), 4)
        report.answers[name] = {qid: v["answer"] for qid, v in per.items()}
    for a, b in comparison_pairs(list(report.metrics)):
        found = paired_comparison(report, a, b, "f1")
        rounded = {"diff": round(found.diff, 4), "p_not_better": round(found.p_not_better, 4)}
        report.comparisons.append({**asdict(found), **rounded, "text": str(found)})
    return report


def comparison_pairs(strategies: Sequence[str]) -> list[tuple[str, str]]:
    """Each strategy against ``full``, and each ``qrhead`` strategy against ``bm25`` at the same budget or k."""
    pairs = [(name, "full") for name in strategies if name != "full" and "full" in strategies]
    for name in strategies:
        if name.startswith("qrhead"):
            rival = "bm25" + name.removeprefix("qrhead")
            if rival in strategies:
                pairs.append((name, rival))
    return pairs


def qa_markdown(report: QAReport) -> str:
    """The strategies × (EM, F1, tokens, seconds, diagnostics where present) table and the paired comparisons."""
    extra = [d for d in DIAGNOSTICS if any(d in values for values in report.metrics.values())]
    header = [
        "strategy",
        "EM",
        "F1",
        "reader tokens",
        "context tokens",
        "s/question",
        *(d.replace("_", " ") for d in extra),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, v in report.metrics.items():
        cells = [f"{v['em']:.3f}", f"{v['f1']:.3f}", f"{v['reader_tokens']:.0f}", f"{v['context_tokens']:.0f}"]
        cells += [f"{v['seconds']:.2f}", *(f"{v[d]:.3f}" if d in v else "—" for d in extra)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {comparison['text']}" for comparison in report.comparisons]
    return "\n".join(lines) + "\n"
