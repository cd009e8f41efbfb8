"""`QRHeadScorer`: score, rank and re-rank passages for queries with a model's query-focused retrieval heads.

Every feature of the package (adapters, compressor, detection, evaluation) goes through one pipeline
(:meth:`QRHeadScorer.score_per_head_many` for one set of passages, :meth:`QRHeadScorer.score_per_head_batch` for
independent rows):

    passages + queries → prompt (prefix + one tail per query and one for "N/A")
    → one forward of prefix + all tails packed (each tail sees the prefix and itself), cut inside the deepest
      selected layer, capturing the selected heads — or, for sliding-window models, a prefix forward and the
      tails on a fork of its cache
    → token scores (calibrated) → per-passage sums (optionally filtered) → per-head scores.

The content-free ``"N/A"`` tail is shared by all queries of a call, so ``k`` queries over the same passages cost
one prefix and ``k + 1`` short tails. docs/architecture.md draws the whole pipeline.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import torch
from tqdm.auto import tqdm

from . import capture
from .assembly import TextIds
from .errors import InvalidInputError, PassageTypeError, QRHeadError
from .fusion import MODEL_DEFAULT, Fusion, as_fusion, as_fusion_setting, fuse_with_first_stage, rank_order
from .heads import HeadSpec, resolve_heads
from .lexical import bm25_rank
from .models import DEFAULT_MODEL, load_model
from .presets import model_fusion
from .prompt import NULL_QUERY, EncodedPrompt, Layout, Passage, PromptBuilder, check_query, to_passages
from .scoring import combine_heads, passage_scores, token_scores

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from transformers.cache_utils import Cache

Order = Literal["as_given", "reversed", "shuffled"]
QueryPart = Literal["all", "query"]

EMPTY_PASSAGE_SCORE = float("-inf")
"""Score of a passage with no text and no title: it has nothing to attend to, so it ranks last."""

_WINDOW_MARGIN = 16

GPU_ROWS_PER_FORWARD = 8
"""Rows per forward of the batch methods (``rank_batch``, ``score_batch``) on an accelerator: enough to keep it
busy on short rows; :data:`BATCH_TOKENS` bounds the padded size of one forward. On a CPU the default is one
row per forward: there one row of ~1,300 tokens already fills the matrix products, and batching measured
*slower* (SmolLM2, 10 x 150-token passages: 0.59 rows/s at 1, 0.51 at 4, 0.40 at 16 rows per forward —
padding, and element-wise work on activations too large for the caches; reports/bench_throughput.md)."""

BATCH_TOKENS = 32_768
"""Most padded tokens (rows × longest row) per batched forward: bounds activation memory."""


@dataclass(frozen=True)
class ScorerConfig:
    """How passages are laid out and scored. Defaults were chosen by measurement (see docs/engine.md).

    Attributes:
        calibrate: subtract the content-free ``"N/A"`` query's attention (ICR). Without it scores collapse to
            position and recall falls to chance, so only turn it off to study that.
        outlier_filter: zero token scores ``<= mean - 2·std`` within each passage before summing (both reference
            codes do; measured neutral for selected heads), off by default.
        order: prompt order of the passages: ``"reversed"`` (the default, as the reference code lays them out:
            the retriever's best passage — the first one given — last, next to the query, where a small model
            looks most; the dev figures behind every default were measured in this layout), ``"as_given"`` or
            ``"shuffled"`` (seeded by ``seed``).
        seed: seed of the ``"shuffled"`` order (a local RNG; global random state is never touched).
        debias: score the passages in the chosen order and in the reverse order and average, reducing the
            preference for passages next to the query or at the start (costs a second prefix forward).
        max_passage_tokens: cut each passage's text to this many tokens for scoring (``None``: no cap). The
            caller's passages are returned untouched; only the model sees the cut text. 128 by default: the
            dev figures behind every default were measured with it, and it reads 20 passages in about a
            quarter of the time 512 takes (docs/results.md, "Defaults and why").
        max_length: most prompt tokens per forward (default: the model's context length). Passages that do not
            fit are scored in windows (see :meth:`QRHeadScorer.score_per_head_many`).
        layout: ``"auto"`` (the tokenizer's chat template if it has one), ``"chat"`` or ``"plain"``.
        show_progress: show a progress bar over the forward passes.
        query_part: which prompt rows' attention is read: ``"all"`` (the default, as the reference codes do: the
            late instruction, the query and the template's end) or ``"query"`` (the query's own tokens and the
            template's end only; the instruction's rows, the same for every query, are left out of both the
            query's and the "N/A" query's means). The two tie on the dev data (docs/results.md, "Defaults and why").
        fusion: how :meth:`QRHeadScorer.rank` blends QRHead's ranking with the first stage's (the input order,
            or ``first_stage_scores``) and with BM25 over the candidates: ``"default"`` (the model's own,
            chosen on its dev data: ``presets.model_fusion``; resolved when the scorer is built), a
            :class:`~qrhead_integrations.fusion.Fusion`, a number (the first stage's weight in ``[0, 1]``, no
            lexical share) or ``None`` (QRHead alone). Scores (``score``, ``score_many``) are never fused.
    """

    calibrate: bool = True
    outlier_filter: bool = False
    order: Order = "reversed"
    seed: int = 0
    debias: bool = False
    max_passage_tokens: int | None = 128
    max_length: int | None = None
    layout: Layout = "auto"
    show_progress: bool = False
    query_part: QueryPart = "all"
    fusion: Fusion | float | Literal["default"] | None = MODEL_DEFAULT

    def __post_init__(self) -> None:
        """Check the fields (a bad one raises :class:`~qrhead_integrations.errors.InvalidInputError`)."""
        object.__setattr__(self, "fusion", as_fusion_setting(self.fusion))  # validates the weights
        if self.order not in ("as_given", "reversed", "shuffled"):
            raise InvalidInputError(f"order must be 'as_given', 'reversed' or 'shuffled', got {self.order!r}")
        if self.query_part not in ("all", "query"):
            raise InvalidInputError(f"query_part must be 'all' or 'query', got {self.query_part!r}")
        if self.max_passage_tokens is not None and self.max_passage_tokens < 1:
            raise InvalidInputError(f"max_passage_tokens must be >= 1 or None, got {self.max_passage_tokens}")
        if self.max_length is not None and self.max_length < 64:
            raise InvalidInputError(f"max_length must be >= 64 or None, got {self.max_length}")


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
        config: a :class:`ScorerConfig`; keyword arguments override its fields.

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
        **config_overrides: object,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id or getattr(model.config, "name_or_path", None) or type(model).__name__
        fields: dict[str, Any] = dict(config_overrides)  # each field's value is ScorerConfig's to check
        self.config = replace(config or ScorerConfig(), **fields)
        if self.config.fusion == MODEL_DEFAULT:
            self.config = replace(self.config, fusion=model_fusion(self.model_id))
        self.num_layers, self.num_heads = _layer_shape(model)
        self.heads = resolve_heads(heads, model_id=self.model_id, num_layers=self.num_layers, num_heads=self.num_heads)
        capture.prepare_model(model)
        self._builder = PromptBuilder(tokenizer, self.config.layout)
        self._check_room()
        self._lock = threading.Lock()
        self._blank_cache = capture.new_cache(model)
        self._croppable = capture.can_crop(self._blank_cache)

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
            **config_overrides: :class:`ScorerConfig` fields overriding ``config``'s (``debias=True``...).
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
            **config_overrides,
        )

    def with_heads(self, heads: HeadSpec) -> QRHeadScorer:
        """A scorer over the same model (no reload) reading other heads — for ablations and detection."""
        return self.with_config(heads=heads)

    def with_config(self, *, heads: HeadSpec = None, **config_overrides: object) -> QRHeadScorer:
        """A scorer over the same model with other heads and/or config fields."""
        return QRHeadScorer(
            self.model,
            self.tokenizer,
            heads=self.heads if heads is None else heads,
            model_id=self.model_id,
            config=self.config,
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
        if value is None:
            return self.default_rows_per_forward
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"rows_per_forward must be an int >= 1 or None, got {value!r}")
        return value

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
        fusion: Fusion | float | Literal["config", "default"] | None = "config",
    ) -> list[RankedPassage]:
        """Passages best first (ties keep input order), the best ``top_n`` of them when given.

        Args:
            query: the question.
            passages: the candidates, best first if a first stage ranked them (that order is fused).
            top_n: how many to return (``None``: all).
            first_stage_scores: the first stage's scores (higher = better), input order, to fuse by instead
                of the input order.
            fusion: ``"config"`` or ``"default"`` (``config.fusion``: the model's own unless configured), a
                :class:`~qrhead_integrations.fusion.Fusion` (first-stage and lexical weights), the first stage's
                weight alone, or ``None`` for QRHead alone.
        """
        _check_top_n(top_n)
        chosen = self._fusion_for(fusion)
        items = to_passages(passages)
        _check_first_stage(first_stage_scores, len(items))
        if not items:
            return []
        return self._ranked(query, items, self.score(query, items), chosen, first_stage_scores, top_n)

    def _fusion_for(self, fusion: Fusion | float | str | None) -> Fusion | None:
        """The fusion a ranking call uses: ``"config"``/``"default"`` mean the scorer's configured one."""
        return as_fusion(self.config.fusion if fusion in ("config", MODEL_DEFAULT) else fusion)

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
        fusion: Fusion | float | Literal["config", "default"] | None = "config",
        rows_per_forward: int | None = None,
        show_progress: bool | None = None,
    ) -> list[list[RankedPassage]]:
        """:meth:`rank` for many independent ``(query, passages)`` rows, several rows per forward.

        The same ranking :meth:`rank` gives each row alone (same fusion, same ties), from
        :meth:`score_per_head_batch`'s scores. ``first_stage_scores``, when given, holds one list (or ``None``)
        per row.
        """
        _check_top_n(top_n)
        chosen = self._fusion_for(fusion)
        per_forward = self.rows_per_forward(rows_per_forward)
        row_list = [_check_row(i, row) for i, row in enumerate(_row_list(rows))]
        stages: Sequence[Sequence[float] | None] = (
            [None] * len(row_list) if first_stage_scores is None else first_stage_scores
        )
        if len(stages) != len(row_list):
            raise InvalidInputError(f"{len(stages)} first-stage score lists for {len(row_list)} rows")
        for i, ((_, items), stage) in enumerate(zip(row_list, stages, strict=True)):
            _check_first_stage(stage, len(items), row=i)
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
        units: list[_Unit] = []
        for r, (query_list, items) in enumerate(rows):
            results.append(torch.full((len(query_list), len(self.heads), len(items)), EMPTY_PASSAGE_SCORE))
            scorable = [i for i, p in enumerate(items) if not p.is_empty]
            if not query_list or not scorable:
                continue
            chosen = [items[i] for i in scorable]
            shown, text_tokens, own_ids = (chosen, None, None) if uncut else self._cut(chosen)
            cut = dict(zip(scorable, shown, strict=True))
            counted = None if text_tokens is None else dict(zip(scorable, text_tokens, strict=True))
            orders = self._orders(scorable)
            tails = [*query_list, NULL_QUERY] if self.config.calibrate else query_list
            tail_ids = [self._builder.tail_ids(tail) for tail in tails]
            try:
                windows = [window for order in orders for window in self._windows(order, cut, tail_ids, counted)]
            except QRHeadError as exc:
                if len(rows) == 1:
                    raise
                raise type(exc)(f"row {r}: {exc}") from exc
            # A passage the windows cut again (longer than the context) is a prefix of what its ids read: they hold.
            text_ids = None if own_ids is None else dict(zip(scorable, own_ids, strict=True))
            for window in windows:
                encoded = self._builder.encode(
                    [cut[i] for i in window],
                    tails,
                    None if self.legacy_host_path else tail_ids,
                    None if text_ids is None else [text_ids[i] for i in window],
                )
                units.append(_Unit(r, window, encoded))
            totals[r] = (torch.zeros(len(query_list), len(self.heads), len(items)), scorable, len(orders))
        progress = self.config.show_progress if show_progress is None else show_progress
        # No bar object at all when it is off: building a disabled one costs more than the rest of a call's Python.
        bar = tqdm(total=len(units), desc="qrhead") if progress else None
        with self._lock, bar if bar is not None else contextlib.nullcontext():
            for group in _forward_groups(units, rows_per_forward if rows_per_forward > 1 and self._can_pack() else 1):
                for unit, weights in zip(group, self._capture_many([u.encoded for u in group]), strict=True):
                    total = totals[unit.row][0]
                    null = weights[-1] if self.config.calibrate else None
                    for qi in range(total.shape[0]):
                        tokens = token_scores(weights[qi], null)
                        per_passage = passage_scores(
                            tokens, unit.encoded.passage_spans, outlier_filter=self.config.outlier_filter
                        )
                        total[qi][:, unit.window] += per_passage
                if bar is not None:
                    bar.update(len(group))
        for r, (total, scorable, n_orders) in totals.items():
            results[r][:, :, scorable] = total[:, :, scorable] / n_orders
        return results

    # ------------------------------------------------------------------------------------------- internals
    @property
    def legacy_host_path(self) -> bool:
        """The host path before issue #18, kept selectable for ``benchmarks/bench_throughput.py``.

        That path tokenises blocks again to count them, builds tail ids per window and runs bodies through the
        ``transformers`` wrapper; the benchmark compares host shares before and after. Off by default; both
        paths give the same token ids.
        """
        return not self._builder.direct_backend

    @legacy_host_path.setter
    def legacy_host_path(self, value: bool) -> None:
        self._builder.direct_backend = not value

    def _cut(self, passages: list[Passage]) -> tuple[list[Passage], list[int] | None, list[TextIds] | None]:
        """The passages cut to ``max_passage_tokens``, their texts' token counts and (maybe) their texts' ids.

        Counts and ids come from the same tokenizer call; the ids are there where the builder assembles prompts
        from them (the prompt is then not tokenised again). Both are ``None`` without a cap: nothing was tokenised.
        """
        limit = self.config.max_passage_tokens
        if limit is None:
            return passages, None, None
        if self._builder.assembles:
            return self._builder.truncate_encoded(passages, limit)
        return (*self._builder.truncate_counted(passages, limit), None)

    def _orders(self, indices: list[int]) -> list[list[int]]:
        """The prompt order(s) of the passages: the configured one, plus its reverse when de-biasing."""
        if self.config.order == "reversed":
            first = indices[::-1]
        elif self.config.order == "shuffled":
            first = list(indices)
            random.Random(self.config.seed).shuffle(first)
        else:
            first = list(indices)
        return [first, first[::-1]] if self.config.debias and len(first) > 1 else [first]

    def _windows(
        self,
        order: list[int],
        passages: dict[int, Passage],
        tail_ids: Sequence[list[int]],
        text_tokens: dict[int, int] | None = None,
    ) -> list[list[int]]:
        """Split ``order`` into consecutive windows that fit the context, of about equal token counts.

        With the texts' token counts from the cut (``text_tokens``), a prompt whose upper bound fits is one
        window without tokenising the blocks again — the common case, and the same result, since the blocks
        are only counted to find where to split.
        """
        tail_tokens = max(len(t) for t in tail_ids)
        budget = self.context_length - self._builder.fixed_tokens(tail_tokens) - _WINDOW_MARGIN
        if budget < 32:
            raise InvalidInputError(
                f"the query needs {tail_tokens} tokens, leaving no room for passages in a "
                f"{self.context_length}-token context"
            )
        if text_tokens is not None and not self.legacy_host_path:
            bound = sum(self._builder.block_token_bound(passages[i], text_tokens[i]) for i in order)
            if bound <= budget:
                return [order]
        counts = self._builder.block_tokens([passages[i] for i in order])
        for pos, i in enumerate(order):
            if counts[pos] > budget:
                warnings.warn(
                    f"passage {i} has ~{counts[pos]} tokens, more than fits the context with the query "
                    f"({budget}); it is cut to fit for scoring. Set max_passage_tokens to control this.",
                    stacklevel=4,
                )
                passages[i] = self._builder.truncate(passages[i], max(1, budget - 2 * _WINDOW_MARGIN))
                counts[pos] = self._builder.block_tokens([passages[i]])[0]
        total = sum(counts)
        if total <= budget:
            return [order]
        target = total / math.ceil(total / budget)
        windows: list[list[int]] = [[]]
        filled = 0
        for i, count in zip(order, counts, strict=True):
            if windows[-1] and (filled + count > budget or filled + count / 2 > target):
                windows.append([])
                filled = 0
            windows[-1].append(i)
            filled += count
        return windows

    def _can_pack(self) -> bool:
        """Whether this model's cache keeps every position, as the packed layouts need.

        Sliding-window models run their tails on a forked cache instead, one row per forward.
        """
        return self._croppable

    def _new_cache(self) -> Cache:
        """An empty key/value cache for one forward: a copy of a blank one (the legacy path builds it anew)."""
        if self.legacy_host_path:
            return capture.new_cache(self.model)
        return capture.empty_copy(self._blank_cache)

    def _packed_recorder(
        self, prefix_len: int, shared_rows: int, tails: list[list[int]], *, own: bool = False
    ) -> tuple[capture.Packing, capture.HeadRecorder]:
        """The packed layout of prefix + tails, and a recorder for it.

        The recorder sums the instruction rows (group 0) and each tail's rows (group ``i``) apart; ``own`` ties
        it to this layout (a row of a batch).
        """
        packing = capture.Packing(prefix_len, len(tails[0]), tuple(len(t) for t in tails[1:]))
        n_rows = shared_rows + sum(len(t) for t in tails)
        groups = torch.zeros(1, 1 + len(tails), n_rows)
        groups[0, 0, :shared_rows] = 1
        start = shared_rows
        for i, tail in enumerate(tails, start=1):
            groups[0, i, start : start + len(tail)] = 1
            start += len(tail)
        recorder = capture.HeadRecorder(
            self.heads, n_rows, packing.total_len, row_groups=groups, packing=packing if own else None
        )
        return packing, recorder

    def _capture_many(self, prompts: Sequence[EncodedPrompt]) -> list[list[torch.Tensor]]:
        """:meth:`_capture` for several prompts in one right-padded forward (:class:`capture.BatchPacking`).

        Each prompt's result is what :meth:`_capture` gives it alone.
        """
        if len(prompts) == 1:
            only = prompts[0]
            return [self._capture(only.prefix_ids, self._instruction_rows(only), only.tails)]
        packings, recorders, rows = [], [], []
        for prompt in prompts:
            packing, recorder = self._packed_recorder(
                len(prompt.prefix_ids), self._instruction_rows(prompt), prompt.tails, own=True
            )
            packings.append(packing)
            recorders.append(recorder)
            rows.append(prompt.prefix_ids + [token for tail in prompt.tails for token in tail])
        batch = capture.BatchPacking(tuple(packings))
        padded = [row + [row[-1]] * (batch.width - len(row)) for row in rows]
        capture.run_layers(
            self.model,
            padded,
            self._new_cache(),
            start=0,
            stop_after=self.heads.deepest_layer,
            recorder=capture.BatchRecorder(recorders),
            packing=batch,
        )
        return [
            _tail_means(
                recorder.collect()[0, :, :, : len(prompt.prefix_ids)], self._instruction_rows(prompt), prompt.tails
            )
            for prompt, recorder in zip(prompts, recorders, strict=True)
        ]

    def _instruction_rows(self, prompt: EncodedPrompt) -> int:
        """How many of the prefix's last rows (the instruction) join each query's query part (``query_part``)."""
        return prompt.shared_rows if self.config.query_part == "all" else 0

    def _capture(self, prefix_ids: list[int], shared_rows: int, tails: list[list[int]]) -> list[torch.Tensor]:
        """Selected heads' attention over the prefix, averaged over each query's query-part rows.

        The query part is the prefix's last ``shared_rows`` tokens (the instruction, identical for every query
        and captured once) plus the tail. Returns one ``(heads, prefix_len)`` tensor per tail — exactly the row
        mean a single forward of prefix + tail would give. How the tails run:

        * models whose cache keeps every position: **one forward** of prefix + all tails packed
          (:class:`capture.Packing`: every tail sees the prefix and itself, at its own positions);
        * sliding-window models (their windowed layers drop old keys, so packed tails could not see the
          prefix window they need): the prefix forward, then the tails as right-padded batches on its cache
          (under causal attention a tail's real tokens never see the padding after them).
        """
        stop = self.heads.deepest_layer
        prefix_len = len(prefix_ids)
        cache = self._new_cache()
        if self._croppable:
            packing, recorder = self._packed_recorder(prefix_len, shared_rows, tails)
            ids = prefix_ids + [token for tail in tails for token in tail]
            capture.run_layers(self.model, ids, cache, start=0, stop_after=stop, recorder=recorder, packing=packing)
            return _tail_means(recorder.collect()[0, :, :, :prefix_len], shared_rows, tails)
        shared = capture.HeadRecorder(self.heads, n_rows=shared_rows, total_length=prefix_len) if shared_rows else None
        capture.run_layers(self.model, prefix_ids, cache, start=0, stop_after=stop, recorder=shared)
        shared_sum = shared.collect()[0, 0] if shared is not None else 0.0
        out: list[torch.Tensor] = []
        for group in _tail_groups(tails, prefix_len):
            width = max(len(tail) for tail in group)
            padded = [tail + [tail[-1]] * (width - len(tail)) for tail in group]  # right padding is never seen
            real = torch.zeros(len(group), 1, width)
            for b, tail in enumerate(group):
                real[b, 0, : len(tail)] = 1
            recorder = capture.HeadRecorder(self.heads, width, prefix_len + width, row_groups=real)
            capture.run_layers(
                self.model,
                padded,
                capture.fork_cache(cache, batch=len(group)),
                start=prefix_len,
                stop_after=stop,
                recorder=recorder,
            )
            row_sums = recorder.collect()[:, 0, :, :prefix_len] + shared_sum
            out.extend((row_sums[b] / (shared_rows + len(tail))).cpu() for b, tail in enumerate(group))
        return out


def _tail_means(sums: torch.Tensor, shared_rows: int, tails: list[list[int]]) -> list[torch.Tensor]:
    """Per tail: (instruction rows + its own rows) summed weights over the prefix, divided by its row count."""
    return [((sums[0] + sums[i]) / (shared_rows + len(t))).cpu() for i, t in enumerate(tails, start=1)]


def _tail_groups(tails: list[list[int]], prefix_len: int) -> list[list[list[int]]]:
    """Consecutive groups of tails to run as one right-padded batch each (bounded broadcast copies)."""
    if not tails:
        return []
    per_group = max(1, capture.TAIL_BATCH_TOKENS // (prefix_len + max(len(t) for t in tails)))
    return [tails[i : i + per_group] for i in range(0, len(tails), per_group)]


@dataclass
class _Unit:
    """One forward's worth of a row: the passages of one window in one prompt order, encoded."""

    row: int
    window: list[int]
    encoded: EncodedPrompt

    @property
    def length(self) -> int:
        return len(self.encoded.prefix_ids) + sum(len(t) for t in self.encoded.tails)


def _forward_groups(units: list[_Unit], rows_per_forward: int) -> list[list[_Unit]]:
    """Units grouped for batched forwards: by length (little padding).

    At most ``rows_per_forward`` units and :data:`BATCH_TOKENS` padded tokens go in a group (the caller passes 1
    for a model that cannot pack).
    """
    if rows_per_forward == 1:
        return [[unit] for unit in units]
    groups: list[list[_Unit]] = []
    for unit in sorted(units, key=lambda u: u.length):
        group = groups[-1] if groups else None
        if group and len(group) < rows_per_forward and unit.length * (len(group) + 1) <= BATCH_TOKENS:
            group.append(unit)
        else:
            groups.append([unit])
    return groups


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


def _check_first_stage(scores: Sequence[float] | None, count: int, *, row: int | None = None) -> None:
    """One first-stage score per passage, or a typed error (naming the row of a batch)."""
    if scores is not None and len(scores) != count:
        where = "" if row is None else f"row {row}: "
        raise InvalidInputError(f"{where}{len(scores)} first-stage scores for {count} passages")


def _check_top_n(top_n: object) -> None:
    """An int >= 0 or ``None``; anything else raises :class:`~qrhead_integrations.errors.InvalidInputError`."""
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0):
        raise InvalidInputError(f"top_n must be an int >= 0 or None, got {top_n!r}")


def _layer_shape(model: PreTrainedModel) -> tuple[int, int]:
    """``(num_layers, num_attention_heads)`` from the model's (text) config."""
    config = model.config
    text_config = getattr(config, "get_text_config", lambda: config)()
    layers = getattr(text_config, "num_hidden_layers", None)
    heads = getattr(text_config, "num_attention_heads", None)
    if not isinstance(layers, int) or not isinstance(heads, int):
        raise InvalidInputError(f"{type(model).__name__}: config lacks num_hidden_layers/num_attention_heads")
    return layers, heads
