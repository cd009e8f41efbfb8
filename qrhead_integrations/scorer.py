"""`QRHeadScorer`: score, rank and re-rank passages for queries with a model's query-focused retrieval heads.

Every feature of the package (adapters, compressor, detection, evaluation) goes through one pipeline
(:meth:`QRHeadScorer.score_per_head_many` for one set of passages, :meth:`QRHeadScorer.score_per_head_batch` for
independent rows):

    passages + queries → a plan (:mod:`.plan`: the cut, orders, windows; prefix + one tail per query and one
      for "N/A") → the forwards (:mod:`.forward`: one packed forward per prompt, cut inside the deepest selected
      layer, capturing the selected heads) → token scores (calibrated) → per-passage sums → per-head scores.

This module holds the public methods and adds the scores up; planning and running forwards live next door. The
content-free ``"N/A"`` tail is shared by all queries of a call, so ``k`` queries over the same passages cost one
prefix and ``k + 1`` short tails. docs/architecture.md draws the whole pipeline.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from . import capture
from ._checks import check_int
from .config import Order, QueryPart, ScorerConfig, StudyOptions, with_overrides
from .errors import InvalidInputError, NotPicklableError, PassageTypeError, QRHeadError
from .forward import Forwards, torch_threads
from .fusion import (
    MODEL_DEFAULT,
    Fusion,
    FusionSetting,
    as_fusion,
    as_fusion_setting,
    check_first_stage,
    check_first_stage_rows,
    fuse_with_first_stage,
    model_fusion,
    rank_order,
)
from .heads import HeadSpec, resolve_heads
from .lexical import bm25_rank
from .models import DEFAULT_MODEL, load_model
from .parallel import ParallelEncoder
from .passage_cache import PassageCache
from .plan import BATCH_TOKENS, Planner, Unit, forward_groups, warn_if_long
from .prompt import NULL_QUERY, Passage, PromptBuilder, check_query, to_passages
from .scoring import combine_heads, passage_scores, token_scores

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "BATCH_TOKENS",
    "EMPTY_PASSAGE_SCORE",
    "GPU_ROWS_PER_FORWARD",
    "Order",
    "QRHeadScorer",
    "QueryPart",
    "RankedPassage",
    "ScorerConfig",
    "StudyOptions",
]

EMPTY_PASSAGE_SCORE = float("-inf")
"""Score of a passage with no text and no title: it has nothing to attend to, so it ranks last."""

GPU_ROWS_PER_FORWARD = 8
"""Rows per forward of the batch methods (``rank_batch``, ``score_batch``) on an accelerator: enough to keep it
busy on short rows; :data:`BATCH_TOKENS` bounds the padded size of one forward. On a CPU the default is one
row per forward: there one row of ~1,300 tokens already fills the matrix products, and batching measured
*slower* (SmolLM2, 10 x 150-token passages: 0.59 rows/s at 1, 0.51 at 4, 0.40 at 16 rows per forward —
padding, and element-wise work on activations too large for the caches; reports/bench_throughput.md)."""


@dataclass(frozen=True)
class RankedPassage:
    """One ranked result.

    Attributes:
        index: the passage's position in the input.
        score: what the ranking is sorted by: the fused score when fusion is on (a z-score mix, centred near 0,
            for ``form="scores"``, the default; in ``(0, 1]`` for ``form="ranks"``), else the QRHead score.
        passage: the passage itself.
        qrhead_score: the calibrated QRHead score (attention), whether or not fusion is on.
    """

    index: int
    score: float
    passage: Passage = field(repr=False)
    qrhead_score: float = math.nan


class QRHeadScorer:
    """Scores passages for a query by the attention its query-focused retrieval heads pay them.

    Args:
        model: a loaded Hugging Face causal LM (it is switched to the capturing sdpa attention, which computes
            the same outputs as sdpa when nothing is being recorded).
        tokenizer: its tokenizer.
        heads: which heads to read — see :func:`qrhead_integrations.heads.resolve_heads` (``None`` = the
            model's default preset; all heads for a model without presets).
        model_id: the id used to look up head presets (defaults to the model's ``name_or_path``).
        config: a :class:`ScorerConfig`; keyword arguments override its fields (and, by name, those of its
            :class:`StudyOptions`: ``calibrate=False``...). Fixed for the scorer's life: :meth:`with_config`
            gives another scorer over the same model.

    Attributes:
        planner: how calls are laid out as forwards (:class:`~qrhead_integrations.plan.Planner`: the cut, the
            orders, the windows) — an internal API, documented for benchmarks and tests.
        forwards: the forwards themselves (:class:`~qrhead_integrations.forward.Forwards`), likewise.

    Example:
        >>> scorer = QRHeadScorer.from_pretrained("smollm2-135m-instruct")  # doctest: +SKIP
        >>> scorer.rank("Who wrote Hamlet?", ["Paris is in France.", "Hamlet is a play by Shakespeare."])
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        heads: HeadSpec = None,
        model_id: str | None = None,
        config: ScorerConfig | None = None,
        passage_cache: PassageCache | None = None,
        **config_overrides: object,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id or getattr(model.config, "name_or_path", None) or type(model).__name__
        config = with_overrides(config, config_overrides)
        if config.fusion == MODEL_DEFAULT:  # the sentinel is resolved here, once: config.fusion is what rank uses
            config = with_overrides(config, {"fusion": model_fusion(self.model_id)})
        self.config = config
        self.num_layers, self.num_heads = _layer_shape(model)
        self.heads = resolve_heads(heads, model_id=self.model_id, num_layers=self.num_layers, num_heads=self.num_heads)
        capture.prepare_model(model)
        self._builder = PromptBuilder(tokenizer, config.layout)
        self.planner = Planner(self._builder, config, self.context_length)
        self.forwards = Forwards(model, self.heads, instruction_rows=config.study.query_part == "all")
        self._check_room()
        self._lock = threading.Lock()
        if passage_cache is not None and not isinstance(passage_cache, PassageCache):
            raise InvalidInputError(f"passage_cache must be a PassageCache or None, got {type(passage_cache).__name__}")
        if passage_cache is not None and (not config.study.calibrate or config.study.outlier_filter):
            raise InvalidInputError("passage_cache reads calibrated scores without the outlier filter (study options)")
        self.passage_cache = passage_cache
        self._parallel: ParallelEncoder | None = None

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        heads: HeadSpec = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        quantize: str | None = None,
        show_progress: bool = False,
        config: ScorerConfig | None = None,
        passage_cache: PassageCache | None = None,
        **config_overrides: object,
    ) -> QRHeadScorer:
        """Load a model and build a scorer.

        Args:
            model: a bundled offline model (``"qwen2.5-coder-0.5b-instruct"``, the default, or the 4x faster
                ``"smollm2-135m-instruct"``), a local folder, a ``.gguf`` file, or a hub id.
            heads: head specification (see the class docstring).
            device: ``"cpu"``, ``"cuda"``, ``"mps"``... chosen automatically when ``None``.
            dtype: ``torch.dtype`` or name; by default bf16 on CPUs with AMX bf16 (2.47x faster there, same dev
                quality), else float32 on CPU; bf16/fp16 on GPUs (``models.resolve_dtype``).
            model_kwargs: passed through to ``AutoModelForCausalLM.from_pretrained``.
            tokenizer_kwargs: passed through to ``AutoTokenizer.from_pretrained``.
            cache_dir: where converted GGUF models are kept (default ``$QRHEAD_CACHE_DIR`` or ~/.cache).
            quantize: ``"int8"`` for dynamic int8 Linear layers (CPU only; attention stays float32, so the captured
                heads are exact for the quantised model; rankings can change, see docs/engine.md), or ``None``.
            show_progress: progress bars: transformers' weight loading and the scorer's forward passes
                (``ScorerConfig.show_progress``). Off by default: a cached load takes seconds.
            config: a :class:`ScorerConfig`.
            passage_cache: a :class:`~qrhead_integrations.passage_cache.PassageCache`: passages are then encoded
                once each (alone, in the parallel layout) and later queries read them from the cache — a query
                costs its own tokens instead of every candidate's. ``None`` (default): passages read in context.
            **config_overrides: :class:`ScorerConfig` fields overriding ``config``'s (``debias=True``...), and
                :class:`StudyOptions` fields by name (``calibrate=False``, ``query_part="query"``...).
        """
        loaded = load_model(
            model,
            device=device,
            dtype=dtype,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
            cache=cache_dir,
            quantize=quantize,
            show_progress=show_progress,
        )
        return cls(
            loaded.model,
            loaded.tokenizer,
            heads=heads,
            model_id=loaded.model_id,
            config=config,
            **({"show_progress": True} if show_progress else {}),
            passage_cache=passage_cache,
            **config_overrides,
        )

    def with_heads(self, heads: HeadSpec) -> QRHeadScorer:
        """A scorer over the same model (no reload) reading other heads — for ablations and detection."""
        return self.with_config(heads=heads)

    def with_config(
        self, *, heads: HeadSpec = None, passage_cache: PassageCache | None = None, **config_overrides: object
    ) -> QRHeadScorer:
        """A scorer over the same model with other heads and/or config fields (study options by name too)."""
        return QRHeadScorer(
            self.model,
            self.tokenizer,
            heads=self.heads if heads is None else heads,
            model_id=self.model_id,
            config=self.config,
            passage_cache=self.passage_cache if passage_cache is None else passage_cache,
            **config_overrides,
        )

    # -------------------------------------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        """Where the model's weights are (and so where its forward runs)."""
        found: torch.device = next(self.model.parameters()).device
        return found

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's (first) weights: what ``dtype`` resolved to when it was loaded."""
        found: torch.dtype = next(self.model.parameters()).dtype
        return found

    @property
    def context_length(self) -> int:
        """Most prompt tokens per forward: the model's context, or ``config.max_length`` when smaller."""
        native = getattr(self.model.config, "max_position_embeddings", None) or 4096
        return min(native, self.config.max_length) if self.config.max_length else native

    def __copy__(self) -> QRHeadScorer:
        """The scorer itself: a scorer is a view of a loaded model, shared by reference, never copied."""
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> QRHeadScorer:
        """The scorer itself, as :meth:`__copy__`: a deep copy of a pipeline shares its model, as it shares a GPU."""
        return self

    def __reduce__(self) -> Any:  # noqa: ANN401 - never returns
        """Refuse to pickle with a typed error saying why (a pickled adapter reloads its model from its settings)."""
        raise NotPicklableError(
            f"a QRHeadScorer ({self.model_id!r}) holds a loaded model and is not pickled; pickle the adapter that "
            "holds it (it loads the model again from its settings on first use), or call "
            "QRHeadScorer.from_pretrained in the other process"
        )

    def __repr__(self) -> str:
        """The model id, how many heads and the device."""
        return f"QRHeadScorer(model_id={self.model_id!r}, heads={len(self.heads)} heads, device={self.device})"

    @property
    def default_rows_per_forward(self) -> int:
        """Rows per batched forward when none is given: 1 on a CPU, :data:`GPU_ROWS_PER_FORWARD` elsewhere."""
        return 1 if self.device.type == "cpu" else GPU_ROWS_PER_FORWARD

    def rows_per_forward(self, value: int | None) -> int:
        """``value`` checked (an int >= 1), or :attr:`default_rows_per_forward` for ``None``.

        Raises:
            InvalidInputError: anything else.
        """
        checked = check_int(value, "rows_per_forward", minimum=1, optional=True)
        return self.default_rows_per_forward if checked is None else checked

    MIN_ROOM = 32
    """Tokens a context must leave for passages and the query beyond the prompt template's own."""

    def _check_room(self) -> None:
        """Refuse a ``max_length`` that cannot hold the template plus any real passage and query.

        Such a length would fail on every call; the template's own size is measured with one empty passage and
        the ``"N/A"`` query.
        """
        if self.config.max_length is None:
            return
        encoded = self._builder.encode([Passage(text="")], [NULL_QUERY])
        template = len(encoded.prefix_ids) + len(encoded.tails[0])
        if self.context_length < template + self.MIN_ROOM:
            raise InvalidInputError(
                f"max_length={self.config.max_length} cannot score anything: this model's prompt template alone "
                f"takes {template} tokens; give at least {template + self.MIN_ROOM}"
            )

    # ------------------------------------------------------------------------------------------- public API
    def score(self, query: str, passages: Iterable[Any]) -> list[float]:
        """Calibrated QRHead score of each passage (input order); higher is more relevant."""
        return self.score_many([query], passages)[0]

    def score_many(
        self,
        queries: Sequence[str],
        passages: Iterable[Any],
        *,
        uncut: bool = False,
        show_progress: bool | None = None,
    ) -> list[list[float]]:
        """Scores of the same passages for several queries, encoding the passages once.

        ``uncut=True`` reads every passage whole, ignoring ``max_passage_tokens`` (the compressor's chunks are
        already sized; a cut would hide their ends). ``show_progress`` overrides ``config.show_progress`` for
        this call (a bar over the forward passes).
        """
        per_head = self.score_per_head_many(queries, passages, uncut=uncut, show_progress=show_progress)
        return [combine_heads(q).tolist() for q in per_head]

    def score_per_head(self, query: str, passages: Iterable[Any]) -> torch.Tensor:
        """``(heads, passages)`` per-head scores, heads in ``self.heads`` order (what detection reads)."""
        return self.score_per_head_many([query], passages)[0]

    def rank(
        self,
        query: str,
        passages: Iterable[Any],
        *,
        top_n: int | None = None,
        first_stage_scores: Sequence[float] | None = None,
        fusion: FusionSetting = MODEL_DEFAULT,
    ) -> list[RankedPassage]:
        """Passages best first (ties keep input order), the best ``top_n`` of them when given.

        Args:
            query: the question.
            passages: the candidates, best first if a first stage ranked them (that order is fused).
            top_n: how many to return (``None``: all).
            first_stage_scores: the first stage's scores (higher = better), input order, to fuse by instead
                of the input order.
            fusion: ``"default"`` (``config.fusion``: the model's own unless configured), a
                :class:`~qrhead_integrations.fusion.Fusion` (first-stage and lexical weights) or a mapping of its
                fields, the first stage's weight alone, or ``None`` for QRHead alone.
        """
        check_int(top_n, "top_n", optional=True)
        chosen = self._fusion_for(fusion)
        items = to_passages(passages)
        stage = check_first_stage(first_stage_scores, len(items))
        if not items:
            return []
        return self._ranked(query, items, self.score(query, items), chosen, stage, top_n)

    def _fusion_for(self, fusion: object) -> Fusion | None:
        """The fusion a ranking call uses, normalised where it enters: ``"default"`` means the configured one."""
        setting = as_fusion_setting(fusion)
        return as_fusion(self.config.fusion) if isinstance(setting, str) else setting  # config's is resolved

    @staticmethod
    def _ranked(
        query: str,
        items: list[Passage],
        qrhead: list[float],
        chosen: Fusion | None,
        first_stage_scores: Sequence[float] | None,
        top_n: int | None,
    ) -> list[RankedPassage]:
        """The ranking of one row from its QRHead scores: fused as ``chosen`` says, best first, ties by index."""
        if not items:
            return []
        lexical = bm25_rank(query, items) if chosen is not None and chosen.needs_lexical else None
        ranking = qrhead if chosen is None else fuse_with_first_stage(qrhead, chosen, first_stage_scores, lexical)
        order = rank_order(ranking)
        if top_n is not None:
            order = order[:top_n]
        return [RankedPassage(i, ranking[i], items[i], qrhead_score=qrhead[i]) for i in order]

    def score_per_head_many(
        self,
        queries: Sequence[str],
        passages: Iterable[Any],
        *,
        uncut: bool = False,
        show_progress: bool | None = None,
    ) -> torch.Tensor:
        """``(queries, heads, passages)`` per-head scores on the CPU — the one pipeline every feature uses.

        Passages are cut to ``max_passage_tokens`` for scoring. When they do not fit ``context_length`` together,
        they are split into consecutive windows of about equal token counts, each scored with its own prefix
        and its own ``"N/A"`` calibration. Calibrated scores measure how much more attention a passage gets
        from the query than from a content-free query, which keeps windows comparable to a first
        approximation; windows of equal size keep the attention budget per passage similar.

        Empty passages (no text, no title) are left out of the prompt and score ``EMPTY_PASSAGE_SCORE``.
        """
        if isinstance(queries, str):
            raise InvalidInputError("score_many/score_per_head_many take a list of queries, not a single string")
        if not isinstance(queries, Sequence):
            raise PassageTypeError(f"queries must be a list of str, got {type(queries).__name__}")
        query_list = [check_query(q) for q in queries]
        items = to_passages(passages)
        return self._score_rows([(query_list, items)], rows_per_forward=1, uncut=uncut, show_progress=show_progress)[0]

    def score_per_head_batch(
        self,
        rows: Iterable[tuple[str, Iterable[Any]]],
        *,
        rows_per_forward: int | None = None,
        uncut: bool = False,
        show_progress: bool | None = None,
    ) -> list[torch.Tensor]:
        """One ``(heads, passages)`` tensor per independent ``(query, passages)`` row, several rows per forward.

        Rows of similar prompt length are run together, up to ``rows_per_forward`` per forward (and
        :data:`BATCH_TOKENS` padded tokens): each row attends only to its own tokens, so the scores are those of
        :meth:`score_per_head` on each row alone, up to float summation order (tested to 1e-5 in float32).
        Why: on a GPU one row leaves the device mostly idle. ``None``: :attr:`default_rows_per_forward` (one on a
        CPU, where batching measured slower; :data:`GPU_ROWS_PER_FORWARD` elsewhere).

        Raises:
            QRHeadError: a bad row (its message starts with ``row i:``); no row is scored then.
        """
        per_forward = self.rows_per_forward(rows_per_forward)
        checked = [_check_row(i, row) for i, row in enumerate(_row_list(rows))]
        return self._score_checked_rows(checked, per_forward, uncut=uncut, show_progress=show_progress)

    def _score_checked_rows(
        self, rows: list[tuple[str, list[Passage]]], rows_per_forward: int, *, uncut: bool, show_progress: bool | None
    ) -> list[torch.Tensor]:
        """:meth:`score_per_head_batch` for rows already checked by :func:`_check_row`."""
        prepared = [([query], items) for query, items in rows]
        results = self._score_rows(
            prepared, rows_per_forward=rows_per_forward, uncut=uncut, show_progress=show_progress
        )
        return [result[0] for result in results]

    def score_batch(
        self,
        rows: Iterable[tuple[str, Iterable[Any]]],
        *,
        rows_per_forward: int | None = None,
        show_progress: bool | None = None,
    ) -> list[list[float]]:
        """:meth:`score` for many independent ``(query, passages)`` rows (see :meth:`score_per_head_batch`)."""
        per_head = self.score_per_head_batch(rows, rows_per_forward=rows_per_forward, show_progress=show_progress)
        return [combine_heads(row).tolist() for row in per_head]

    def rank_batch(
        self,
        rows: Iterable[tuple[str, Iterable[Any]]],
        *,
        top_n: int | None = None,
        first_stage_scores: Sequence[Sequence[float] | None] | None = None,
        fusion: FusionSetting = MODEL_DEFAULT,
        rows_per_forward: int | None = None,
        show_progress: bool | None = None,
    ) -> list[list[RankedPassage]]:
        """:meth:`rank` for many independent ``(query, passages)`` rows, several rows per forward.

        The same ranking :meth:`rank` gives each row alone (same fusion, same ties), from
        :meth:`score_per_head_batch`'s scores. ``first_stage_scores``, when given, holds one list (or ``None``)
        per row.
        """
        check_int(top_n, "top_n", optional=True)
        chosen = self._fusion_for(fusion)
        per_forward = self.rows_per_forward(rows_per_forward)
        row_list = [_check_row(i, row) for i, row in enumerate(_row_list(rows))]
        stages = check_first_stage_rows(first_stage_scores, [len(items) for _, items in row_list])
        per_head = self._score_checked_rows(row_list, per_forward, uncut=False, show_progress=show_progress)
        scores = [combine_heads(row).tolist() for row in per_head]
        return [
            self._ranked(query, items, qrhead, chosen, stage, top_n)
            for (query, items), qrhead, stage in zip(row_list, scores, stages, strict=True)
        ]

    @torch.inference_mode()  # every scoring path runs through here: no autograd graph, whichever entry point
    def _score_rows(
        self,
        rows: Sequence[tuple[list[str], list[Passage]]],
        *,
        rows_per_forward: int,
        uncut: bool,
        show_progress: bool | None,
    ) -> list[torch.Tensor]:
        """``(queries, heads, passages)`` for each ``(checked queries, passages)`` row.

        Every row is planned (cut, orders, windows, encoded prompts), then the prompts run ``rows_per_forward``
        at a time.
        """
        results: list[torch.Tensor] = []
        totals: dict[int, tuple[torch.Tensor, list[int], int]] = {}
        units: list[Unit] = []
        for r, (query_list, items) in enumerate(rows):
            results.append(torch.full((len(query_list), len(self.heads), len(items)), EMPTY_PASSAGE_SCORE))
            try:
                planned = self.planner.plan_row(r, query_list, items, uncut=uncut)
            except QRHeadError as exc:
                if len(rows) == 1:
                    raise
                raise type(exc)(f"row {r}: {exc}") from exc
            if planned is None:
                continue
            units.extend(planned.units)
            zeros = torch.zeros(len(query_list), len(self.heads), len(items))
            totals[r] = (zeros, planned.scorable, planned.n_orders)
        layers_run, accelerator = self.heads.deepest_layer + 1, self.device.type != "cpu"
        long = warn_if_long(units, self.model, layers_run, self.num_layers, accelerator)  # before any forward
        # A long uncut call (the compressor's) shows a bar unless the call says otherwise.
        progress = (self.config.show_progress or (long and uncut)) if show_progress is None else show_progress
        # No bar object at all when it is off: building a disabled one costs more than the rest of a call's Python.
        bar = tqdm(total=len(units), desc="qrhead") if progress else None
        calibrate, outlier_filter = self.config.study.calibrate, self.config.study.outlier_filter
        per_forward = rows_per_forward if rows_per_forward > 1 and self.forwards.can_pack else 1
        with self._lock, torch_threads(self.config.threads), bar if bar is not None else contextlib.nullcontext():
            if self.passage_cache is not None:
                for unit in units:
                    totals[unit.row][0][:, :, unit.window] += self._cached_scores(rows[unit.row][0], unit)
                    if bar is not None:
                        bar.update(1)
                units = []
            for group in forward_groups(units, per_forward):
                for unit, weights in zip(group, self.forwards.capture_many([u.encoded for u in group]), strict=True):
                    total = totals[unit.row][0]
                    null = weights[-1] if calibrate else None
                    for qi in range(total.shape[0]):
                        tokens = token_scores(weights[qi], null)
                        per_passage = passage_scores(tokens, unit.encoded.passage_spans, outlier_filter=outlier_filter)
                        total[qi][:, unit.window] += per_passage
                if bar is not None:
                    bar.update(len(group))
        for r, (total, scorable, n_orders) in totals.items():
            results[r][:, :, scorable] = total[:, :, scorable] / n_orders
        return results

    def _cached_scores(self, queries: list[str], unit: Unit) -> torch.Tensor:
        """``(queries, heads, window)`` scores of a unit's passages read from (or first stored in) the cache."""
        cache = self.passage_cache
        if cache is None:
            raise RuntimeError("no passage cache")  # unreachable: the caller checks
        if self._parallel is None:
            self._parallel = ParallelEncoder(self)
        encoder = self._parallel
        namespace = self.cache_namespace
        entries = [cache.get_or_encode(namespace, p, encoder.encode_cut) for p in unit.passages]
        return encoder.score_per_head(queries, entries)

    @property
    def cache_namespace(self) -> str:
        """What a cached passage's entry depends on besides its text: model, dtype, layout, template and depth."""
        template = hashlib.sha256(repr((self._builder.before_ids, self._builder.layout)).encode()).hexdigest()[:16]
        dtype = str(self.dtype).removeprefix("torch.")
        return f"{self.model_id}|{dtype}|depth={self.heads.deepest_layer}|template={template}"


def _row_list(rows: object) -> list[Any]:
    """``rows`` as a list, or a typed error when it is no iterable of rows (a string is not)."""
    if isinstance(rows, str | bytes) or not isinstance(rows, Iterable):
        raise PassageTypeError("rows must be a list of (query, passages) pairs")
    return list(rows)


def _check_row(index: int, row: object) -> tuple[str, list[Passage]]:
    """A checked ``(query, passages)`` row; a typed error naming the row otherwise."""
    if isinstance(row, str | bytes) or not isinstance(row, Sequence) or len(row) != 2:
        raise PassageTypeError(f"row {index}: expected a (query, passages) pair, got {type(row).__name__}")
    try:
        return check_query(row[0]), to_passages(row[1])
    except QRHeadError as exc:
        raise type(exc)(f"row {index}: {exc}") from exc


def _layer_shape(model: PreTrainedModel) -> tuple[int, int]:
    """``(num_layers, num_attention_heads)`` from the model's (text) config."""
    config = model.config
    text_config = getattr(config, "get_text_config", lambda: config)()
    layers = getattr(text_config, "num_hidden_layers", None)
    heads = getattr(text_config, "num_attention_heads", None)
    if not isinstance(layers, int) or not isinstance(heads, int):
        raise InvalidInputError(f"{type(model).__name__}: config lacks num_hidden_layers/num_attention_heads")
    return layers, heads
