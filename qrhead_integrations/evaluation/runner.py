"""The evaluation harness behind ``qrhead eval``: QRHead and its baselines over BEIR or multi-hop data.

Systems (names as in the report):

- ``qrhead``: the scorer's heads.
- ``bm25``: BEIR: the first-stage BM25 order; multi-hop: BM25 over the question's own passages.
- ``dense``: cosine similarity of all-MiniLM-L6-v2 embeddings (:mod:`.dense`), over the same candidates.
- ``all_heads``: every head of the same model (ICR). It is read from the *same* forward pass as ``qrhead``
  (a pass that captures all heads also yields the selected ones), so it costs one deeper forward, not two.
- ``fusion``: reciprocal-rank fusion of ``qrhead`` and ``bm25``; ``fusion_dense``: of ``qrhead`` and ``dense``.
- ``default_qrhead`` (comes with ``default``, unless ``qrhead`` is off): the same call's QRHead scores before
  fusion.
- ``default``: exactly what the adapters do with no options: the model's default heads and every
  :class:`~qrhead_integrations.ScorerConfig` default (passage cut, prompt order, fusion with the input order),
  through :meth:`QRHeadScorer.rank`, handed the candidates in the order a pipeline would hand them over: the
  retriever's (BEIR: BM25's, best first; multi-hop: the file's) or, with ``order="shuffled"``, shuffled. It
  ignores ``--heads``/``--max-passage-tokens`` (those shape ``qrhead``) and costs its own forward.

BEIR: BM25 retrieves ``depth`` (100) documents per query; the first ``top_k`` (20) are re-ranked and the rest
keep BM25's order below them, so recall@100 stays meaningful while the model only reads ``top_k`` passages.

Candidate order in the prompt (``order``): ``"retriever-reversed"`` puts the retriever's best passage last,
next to the query (the reference code's layout); ``"retriever"`` keeps the retriever's (or the file's) order;
``"shuffled"`` uses a permutation seeded by ``seed`` and the query id, different for every query. Small models
favour passages next to the query, so a gain should survive ``"shuffled"``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from .._checks import check_int
from ..errors import InvalidInputError
from ..lexical import BM25Index, bm25_rank
from ..prompt import Passage
from ..scorer import QRHeadScorer
from ..scoring import combine_heads
from .data import BeirDataset, MultihopExample
from .dense import DenseScorer
from .fusion import fuse_scores
from .metrics import DEFAULT_METRICS, all_gold_at_k, per_query, rank_indices, recall_at_k
from .report import SYSTEM_ORDER, EvalReport, versions

EvalItem = tuple[str, str, Sequence[Passage], Sequence[float]]
"""One query to score: its id (seeds the shuffled order), text, candidates (retriever or file order) and the
candidates' BM25 scores."""

CandidateOrder = Literal["retriever-reversed", "retriever", "shuffled"]
ORDERS: tuple[str, ...] = ("retriever-reversed", "retriever", "shuffled")
BASELINES: tuple[str, ...] = ("bm25", "dense", "all_heads", "fusion", "fusion_dense", "default")
DEFAULT_BASELINES: tuple[str, ...] = ("bm25", "dense", "fusion", "fusion_dense")
"""Every baseline but ``all_heads``, whose full-depth forward adds ~50-60% to the model time (ask for it by name)."""
MULTIHOP_KS = (2, 5, 10)


def parse_baselines(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"bm25,dense,all-heads"`` -> ``("bm25", "dense", "all_heads")``; ``""`` or ``"none"`` -> ``()``.

    Hyphens and underscores are interchangeable, ``"all"`` means every baseline, and the result follows
    :data:`BASELINES` order.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = {item.strip().lower().replace("-", "_") for item in items} - {"", "none"}
    if "all" in names:
        names = (names - {"all"}) | set(BASELINES)
    unknown = sorted(names - set(BASELINES))
    if unknown:
        known = ", ".join(name.replace("_", "-") for name in BASELINES)
        raise InvalidInputError(f"unknown baseline(s) {', '.join(unknown)}; expected some of {known}, all or none")
    return tuple(name for name in BASELINES if name in names)


def check_qrhead_needs(baselines: Sequence[str], qrhead: bool) -> None:
    """Reject systems that cannot be scored without the ``qrhead`` system, or nothing left to score.

    Raises:
        ValueError: ``qrhead`` is off and a baseline derives from it, or no system remains.
    """
    if qrhead:
        return
    needs = sorted({"all_heads", "fusion", "fusion_dense"} & set(baselines))
    if needs:
        raise InvalidInputError(f"{', '.join(needs)} need the qrhead system: drop them or keep qrhead")
    if not baselines:
        raise InvalidInputError("without the qrhead system and with no baselines there is nothing to evaluate")


def prompt_order(count: int, order: str, *, seed: int = 0, key: str = "") -> list[int]:
    """Candidate indices in the order they go into the prompt (index 0 = the retriever's or file's first).

    Raises:
        ValueError: an unknown order.
    """
    indices = list(range(count))
    if order == "retriever":
        return indices
    if order == "retriever-reversed":
        return indices[::-1]
    if order == "shuffled":
        random.Random(f"{seed}:{key}").shuffle(indices)  # a local RNG; str seeds are stable across runs
        return indices
    raise InvalidInputError(f"order must be one of {', '.join(ORDERS)}; got {order!r}")


class SystemScorer:
    """Scores one query's candidates with QRHead and the requested baselines.

    Args:
        scorer: the QRHead scorer (its heads are the ``qrhead`` system). Its own ``order`` option is replaced
            by ``"as_given"``: the harness lays the candidates out itself (see the module docstring).
        baselines: names from :data:`BASELINES`.
        order: candidate order in the prompt.
        seed: seed of the ``"shuffled"`` order.
        dense: the dense scorer; created (lazily loaded) when a dense system is requested and none is given.
        qrhead: score the ``qrhead`` system (``False`` saves its forward when only ``default`` and the
            model-free baselines are wanted).
        rows_per_forward: queries whose prompts run in one batched forward (:meth:`score_many`; the scores do
            not depend on it); ``None``: the scorer's ``default_rows_per_forward`` (one on a CPU).
    """

    def __init__(
        self,
        scorer: QRHeadScorer,
        baselines: Sequence[str],
        *,
        order: str,
        seed: int = 0,
        dense: DenseScorer | None = None,
        qrhead: bool = True,
        rows_per_forward: int | None = None,
    ) -> None:
        prompt_order(0, order)  # validate early
        self.rows_per_forward = scorer.rows_per_forward(rows_per_forward)
        self.baselines = parse_baselines(baselines)
        check_qrhead_needs(self.baselines, qrhead)
        self.with_qrhead = qrhead
        self.order, self.seed = order, seed
        self.scorer = scorer if scorer.config.order == "as_given" else scorer.with_config(order="as_given")
        self.all_scorer = self.scorer.with_heads("all") if "all_heads" in self.baselines else None
        self._subset: list[int] = []
        if self.all_scorer is not None:
            position = {head: i for i, head in enumerate(self.all_scorer.heads)}
            self._subset = [position[head] for head in self.scorer.heads]
        self.default_scorer = (
            QRHeadScorer(scorer.model, scorer.tokenizer, model_id=scorer.model_id)
            if "default" in self.baselines
            else None
        )
        wants_dense = bool({"dense", "fusion_dense"} & set(self.baselines))
        self.dense = (dense or DenseScorer()) if wants_dense else None
        self.needs_lexical = bool({"bm25", "fusion"} & set(self.baselines))
        self.seconds: dict[str, float] = {}

    @property
    def model_key(self) -> str:
        """The timing key of the model pass."""
        return "qrhead+all_heads" if self.all_scorer is not None else "qrhead"

    def prepare(self) -> None:
        """Load the dense model now (timed as ``dense_load``), so it does not stall the progress bar."""
        if self.dense is not None:
            started = time.perf_counter()
            self.dense.load()
            self.clock("dense_load", started)

    def clock(self, key: str, started: float) -> None:
        """Add the time since ``started`` to ``seconds[key]``."""
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started

    def score(
        self, key: str, query: str, passages: Sequence[Passage], lexical: Sequence[float]
    ) -> dict[str, list[float]]:
        """``{system: scores in candidate order}`` for ``qrhead`` and every requested baseline.

        Args:
            key: the query's id (seeds the shuffled order).
            query: the query text.
            passages: the candidates, retriever (or file) order.
            lexical: BM25 scores of the candidates (used when ``bm25`` or ``fusion`` is requested).
        """
        return self.score_many([(key, query, passages, lexical)])[0]

    def score_many(self, items: Sequence[EvalItem]) -> list[dict[str, list[float]]]:
        """:meth:`score` for several queries, their model forwards batched ``rows_per_forward`` rows at a time.

        The scores are those of one query at a time (:meth:`QRHeadScorer.score_batch`).
        """
        live = [i for i, item in enumerate(items) if item[2]]
        perms = {i: prompt_order(len(items[i][2]), self.order, seed=self.seed, key=items[i][0]) for i in live}
        rows = [(items[i][1], [items[i][2][j] for j in perms[i]]) for i in live]
        model_scores: dict[int, dict[str, torch.Tensor]] = {i: {} for i in live}
        started = time.perf_counter()
        if self.all_scorer is not None:
            per_head = self.all_scorer.score_per_head_batch(rows, rows_per_forward=self.rows_per_forward)
            for i, heads in zip(live, per_head, strict=True):
                model_scores[i] = {"qrhead": combine_heads(heads[self._subset]), "all_heads": combine_heads(heads)}
        elif self.with_qrhead:
            for i, scores in zip(
                live, self.scorer.score_batch(rows, rows_per_forward=self.rows_per_forward), strict=True
            ):
                model_scores[i] = {"qrhead": torch.tensor(scores)}
        if live and (self.all_scorer is not None or self.with_qrhead):
            self.clock(self.model_key, started)
        defaults = self._defaults([items[i] for i in live]) if self.default_scorer is not None else []
        default_of = dict(zip(live, defaults, strict=True)) if defaults else {}
        out: list[dict[str, list[float]]] = []
        for i, (_, query, passages, lexical) in enumerate(items):
            if i not in model_scores:
                out.append({name: [] for name in (*(["qrhead"] if self.with_qrhead else []), *self.baselines)})
                continue
            out.append(self._systems(query, passages, lexical, perms[i], model_scores[i], default_of.get(i)))
        return out

    def _systems(
        self,
        query: str,
        passages: Sequence[Passage],
        lexical: Sequence[float],
        perm: list[int],
        model_scores: dict[str, torch.Tensor],
        default: tuple[list[float], list[float]] | None,
    ) -> dict[str, list[float]]:
        """Every system's scores for one query, given its model scores (prompt order ``perm``)."""
        out: dict[str, list[float]] = {}
        for name, shown_scores in model_scores.items():
            scores = [0.0] * len(passages)
            for position, index in enumerate(perm):
                scores[index] = float(shown_scores[position])
            out[name] = scores
        if default is not None:
            out["default"] = default[0]
            if self.with_qrhead:  # QRHead alone is a row only where the qrhead system was asked for
                out["default_qrhead"] = default[1]
        if self.dense is not None:
            started = time.perf_counter()
            dense = self.dense.score(query, passages)
            self.clock("dense", started)
            if "dense" in self.baselines:
                out["dense"] = dense
            if "fusion_dense" in self.baselines:
                out["fusion_dense"] = fuse_scores([out["qrhead"], dense])
        if "bm25" in self.baselines:
            out["bm25"] = list(lexical)
        if "fusion" in self.baselines:
            out["fusion"] = fuse_scores([out["qrhead"], list(lexical)])
        return out

    def _defaults(self, items: Sequence[EvalItem]) -> list[tuple[list[float], list[float]]]:
        """The ``default`` system's scores, and ``default_qrhead``: the same call's QRHead scores before fusion.

        The ``default`` scores are in candidate order (a descending value per ``rank`` position);
        ``default_qrhead`` is what the default returns with ``fusion=None``, at no extra cost, so one run shows
        what the fusion adds.

        The candidates are handed over in the retriever's (or file's) order — ``retriever-reversed`` is a prompt
        layout of the ``qrhead`` system, not an order a pipeline hands over — or shuffled with ``shuffled``.
        """
        scorer = self.default_scorer
        if scorer is None:
            raise RuntimeError("the default system was not requested")
        givens = [
            prompt_order(len(passages), "shuffled", seed=self.seed, key=key)
            if self.order == "shuffled"
            else list(range(len(passages)))
            for key, _, passages, _ in items
        ]
        started = time.perf_counter()
        rankings = scorer.rank_batch(
            [
                (query, [passages[i] for i in given])
                for (_, query, passages, _), given in zip(items, givens, strict=True)
            ],
            rows_per_forward=self.rows_per_forward,
        )
        self.clock("default", started)
        out = []
        for (_, _, passages, _), given, ranked in zip(items, givens, rankings, strict=True):
            count = len(passages)
            scores = [0.0] * count
            unfused = [0.0] * count
            for position, item in enumerate(ranked):
                scores[given[item.index]] = float(count - position)
                unfused[given[item.index]] = item.qrhead_score
            out.append((scores, unfused))
        return out


def run_beir(
    scorer: QRHeadScorer,
    dataset: BeirDataset,
    *,
    top_k: int = 20,
    depth: int = 100,
    start: int = 0,
    limit: int | None = None,
    order: str = "retriever-reversed",
    seed: int = 0,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    dense: DenseScorer | None = None,
    index: BM25Index | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    show_progress: bool = False,
    info: Mapping[str, Any] | None = None,
    qrhead: bool = True,
    rows_per_forward: int | None = None,
) -> EvalReport:
    """Re-rank BM25's candidates for BEIR queries and score every system against the qrels.

    Queries are taken in query-id order, ``[start:start+limit]``, exactly as
    :func:`~qrhead_integrations.evaluation.beir_candidates` does, so detection and evaluation slices can be
    kept disjoint. A query whose relevant documents BM25 misses is kept and scores 0, as in BEIR.

    Args:
        scorer: the QRHead scorer (model, heads, ``max_passage_tokens``).
        dataset: from :func:`~qrhead_integrations.evaluation.read_beir`.
        top_k: BM25 candidates the model re-ranks (the prompt holds this many passages).
        depth: length of BM25's list; positions ``top_k+1..depth`` keep BM25's order in every system.
        start: first query (in query-id order).
        limit: how many queries from ``start`` (``None``: all).
        order: candidate order in the prompt (:data:`ORDERS`).
        seed: seed of the shuffled order.
        baselines: systems besides ``qrhead`` (:data:`BASELINES`).
        dense: the dense scorer to use (default: the bundled MiniLM, loaded on first use).
        index: a prebuilt BM25 index over ``dataset.corpus``.
        metrics: metric names for :func:`~qrhead_integrations.evaluation.metrics.per_query`.
        show_progress: a progress bar with an ETA on standard error.
        info: extra run facts to store in ``report.info`` (data path, split, command...).
        qrhead: score the ``qrhead`` system (see :class:`SystemScorer`).
        rows_per_forward: queries per batched forward (the results do not depend on it).

    Raises:
        ValueError: bad ``top_k``/``depth``/``start``/``limit``, an unknown order or baseline, or no queries.
    """
    check_int(top_k, "top_k", minimum=1)
    check_int(start, "start")
    check_int(limit, "limit", minimum=1, optional=True)
    depth = max(depth, top_k)
    systems = SystemScorer(
        scorer, baselines, order=order, seed=seed, dense=dense, qrhead=qrhead, rows_per_forward=rows_per_forward
    )
    began = time.perf_counter()
    systems.prepare()
    bm25 = index if index is not None else BM25Index(dataset.corpus)
    systems.clock("bm25_index", began)
    query_ids = sorted(dataset.queries)
    chosen = query_ids[start:] if limit is None else query_ids[start : start + limit]
    if not chosen:
        raise InvalidInputError(f"no queries selected: the split has {len(query_ids)} judged queries, start={start}")
    runs: dict[str, dict[str, dict[str, float]]] = {}
    found = 0
    loop_began = time.perf_counter()
    bar = tqdm(total=len(chosen), desc="qrhead eval beir", unit="query", disable=not show_progress)
    for first in range(0, len(chosen), systems.rows_per_forward):
        group = chosen[first : first + systems.rows_per_forward]
        items: list[EvalItem] = []
        heads: list[tuple[list[str], list[str]]] = []
        for query_id in group:
            query = dataset.queries[query_id]
            started = time.perf_counter()
            ids = [doc_id for doc_id, _ in bm25.search(query, depth)]
            systems.clock("bm25", started)
            head, tail = ids[:top_k], ids[top_k:]
            judged = dataset.qrels.get(query_id, {})
            found += any(judged.get(doc_id, 0) > 0 for doc_id in head)
            lexical = [-float(i) for i in range(len(head))]  # BM25's own order (its scores may tie)
            items.append((query_id, query, [dataset.corpus[doc_id] for doc_id in head], lexical))
            heads.append((head, tail))
        for query_id, (head, tail), scores in zip(group, heads, systems.score_many(items), strict=True):
            for system, values in scores.items():
                ranked = [head[i] for i in rank_indices(values)] + tail
                runs.setdefault(system, {})[query_id] = {
                    doc: float(len(ranked) - pos) for pos, doc in enumerate(ranked)
                }
        bar.update(len(group))
    bar.close()
    loop_seconds = time.perf_counter() - loop_began
    qrels = {query_id: dataset.qrels.get(query_id, {}) for query_id in chosen}
    names = list(metrics)
    table = {system: per_query(run, qrels, names) for system, run in runs.items()}
    run_info = {
        "kind": "beir",
        "n_queries": len(chosen),
        "queries": f"{start}..{start + len(chosen) - 1} in query-id order",
        "top_k": top_k,
        "depth": depth,
        "queries_with_relevant_in_top_k": found,
        "corpus_size": len(dataset.corpus),
    }
    return _report(table, names, systems, scorer, run_info, info, began, loop_seconds, len(chosen))


def run_multihop(
    scorer: QRHeadScorer,
    examples: Sequence[MultihopExample],
    *,
    order: str = "retriever",
    seed: int = 0,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    dense: DenseScorer | None = None,
    ks: Sequence[int] = MULTIHOP_KS,
    show_progress: bool = False,
    info: Mapping[str, Any] | None = None,
    qrhead: bool = True,
    rows_per_forward: int | None = None,
) -> EvalReport:
    """Rank each question's own passages with every system; recall@k and all-gold@k (every hop found).

    Here the "retriever" order is the file's order. Metric names are ``recall@k`` and ``all_gold@k``.

    Args:
        scorer: the QRHead scorer.
        examples: from :func:`~qrhead_integrations.evaluation.read_multihop_jsonl`.
        order: candidate order in the prompt (:data:`ORDERS`).
        seed: seed of the shuffled order.
        baselines: systems besides ``qrhead`` (:data:`BASELINES`).
        dense: the dense scorer to use (default: the bundled MiniLM, loaded on first use).
        ks: cut-offs.
        show_progress: a progress bar with an ETA on standard error.
        info: extra run facts to store in ``report.info``.
        qrhead: score the ``qrhead`` system (see :class:`SystemScorer`).
        rows_per_forward: questions per batched forward (the results do not depend on it).

    Raises:
        ValueError: no examples, a cut-off below 1, or an unknown order or baseline.
    """
    if not examples:
        raise InvalidInputError("no examples to evaluate")
    for k in ks:
        check_int(k, "a cut-off", minimum=1)
    names = [f"recall@{k}" for k in ks] + [f"all_gold@{k}" for k in ks]
    systems = SystemScorer(
        scorer, baselines, order=order, seed=seed, dense=dense, qrhead=qrhead, rows_per_forward=rows_per_forward
    )
    began = time.perf_counter()
    systems.prepare()
    loop_began = time.perf_counter()
    table: dict[str, dict[str, dict[str, float]]] = {}
    bar = tqdm(total=len(examples), desc="qrhead eval multihop", unit="question", disable=not show_progress)
    for first in range(0, len(examples), systems.rows_per_forward):
        group = examples[first : first + systems.rows_per_forward]
        started = time.perf_counter()
        items: list[EvalItem] = [
            (e.id, e.question, e.passages, bm25_rank(e.question, e.passages) if systems.needs_lexical else [])
            for e in group
        ]
        systems.clock("bm25", started)
        for example, scores in zip(group, systems.score_many(items), strict=True):
            for system, values in scores.items():
                ranking = rank_indices(values)
                row = {f"recall@{k}": recall_at_k(ranking, example.gold, k) for k in ks}
                row.update({f"all_gold@{k}": all_gold_at_k(ranking, example.gold, k) for k in ks})
                table.setdefault(system, {})[example.id] = row
        bar.update(len(group))
    bar.close()
    loop_seconds = time.perf_counter() - loop_began
    passages = sum(len(e.passages) for e in examples)
    run_info = {
        "kind": "multihop",
        "n_queries": len(examples),
        "passages_per_question": round(passages / len(examples), 2),
        "chance_recall@2": round(sum(2 / len(e.passages) for e in examples) / len(examples), 4),
    }
    return _report(table, names, systems, scorer, run_info, info, began, loop_seconds, len(examples))


def _report(
    table: dict[str, dict[str, dict[str, float]]],
    names: list[str],
    systems: SystemScorer,
    scorer: QRHeadScorer,
    run_info: dict[str, Any],
    extra: Mapping[str, Any] | None,
    began: float,
    loop_seconds: float,
    count: int,
) -> EvalReport:
    """Means per system (in :data:`~.report.SYSTEM_ORDER`), then the run facts (model, heads, versions, timings)."""
    table = {name: table[name] for name in sorted(table, key=_system_rank)}
    means = {
        system: {name: sum(row[name] for row in rows.values()) / len(rows) if rows else 0.0 for name in names}
        for system, rows in table.items()
    }
    heads = systems.scorer.heads
    info: dict[str, Any] = {
        "model": scorer.model_id,
        "heads": str(heads),
        "heads_count": len(heads),
        "heads_provenance": dict(heads.provenance),
        **run_info,
        "order": systems.order,
        "seed": systems.seed,
        "max_passage_tokens": scorer.config.max_passage_tokens,
        "rows_per_forward": systems.rows_per_forward,
        "systems": list(table),
        "dense_model": systems.dense.name if systems.dense is not None else None,
        "rrf_k": 60,
        "versions": versions(dense=systems.dense is not None),
        "wall_seconds": round(time.perf_counter() - began, 2),
        "seconds_per_query": round(loop_seconds / count, 3),
        "seconds": {key: round(value, 2) for key, value in systems.seconds.items()},
        "date": time.strftime("%Y-%m-%d"),
        **(extra or {}),
    }
    return EvalReport(metrics=means, per_query=table, info=info)


def _system_rank(name: str) -> int:
    return SYSTEM_ORDER.index(name) if name in SYSTEM_ORDER else len(SYSTEM_ORDER)
