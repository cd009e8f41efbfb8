"""How a scorer lays passages out and scores them: :class:`ScorerConfig`, and the study-only :class:`StudyOptions`.

Why two classes: the measurements behind the defaults retired some switches (turning calibration off, the outlier
filter, reading the query's own rows only). They stay runnable, so the studies that retired them can be re-run,
but apart from the options a user tunes, under one clearly named field (``ScorerConfig.study``). Keyword
overrides (``QRHeadScorer(..., calibrate=False)``, ``from_pretrained``, ``with_config``) accept both kinds by
name: :func:`with_overrides` routes each to its place.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from ._checks import check_bool, check_choice, check_int
from .errors import InvalidInputError, OptionTypeError
from .fusion import MODEL_DEFAULT, Fusion, as_fusion_setting
from .prompt import Layout

Order = Literal["as_given", "reversed", "shuffled"]
QueryPart = Literal["all", "query"]


@dataclass(frozen=True)
class StudyOptions:
    """Variants the measurements retired, kept to reproduce the studies; the defaults are what ships.

    Attributes:
        calibrate: subtract the content-free ``"N/A"`` query's attention (ICR). Without it scores collapse to
            position and recall falls to chance; turn it off only to study that.
        outlier_filter: zero token scores ``<= mean - 2·std`` within each passage before summing (both reference
            codes do; measured neutral for selected heads), off by default.
        query_part: which prompt rows' attention is read: ``"all"`` (the default, as the reference codes do: the
            late instruction, the query and the template's end) or ``"query"`` (the query's own tokens and the
            template's end only; the instruction's rows, the same for every query, are left out of both the
            query's and the "N/A" query's means). The two tie on the dev data.
    """

    calibrate: bool = True
    outlier_filter: bool = False
    query_part: QueryPart = "all"

    def __post_init__(self) -> None:
        """Check ``query_part`` (a bad value raises :class:`~qrhead_integrations.errors.InvalidInputError`)."""
        check_bool(self.calibrate, "calibrate")
        check_bool(self.outlier_filter, "outlier_filter")
        check_choice(self.query_part, "query_part", ("all", "query"))


STUDY_FIELDS = tuple(f.name for f in fields(StudyOptions))
"""The keyword names that :func:`with_overrides` routes into :attr:`ScorerConfig.study`."""


@dataclass(frozen=True)
class ScorerConfig:
    """How passages are laid out and scored. Defaults were chosen by measurement (see docs/engine.md).

    Attributes:
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
            quarter of the time 512 takes.
        max_length: most prompt tokens per forward (default: the model's context length). Passages that do not
            fit are scored in windows (see :meth:`QRHeadScorer.score_per_head_many`).
        layout: ``"auto"`` (the tokenizer's chat template if it has one), ``"chat"`` or ``"plain"``.
        show_progress: show a progress bar over the forward passes.
        fusion: how :meth:`QRHeadScorer.rank` blends QRHead's ranking with the first stage's (the input order,
            or ``first_stage_scores``) and with BM25 over the candidates: ``"default"``
            (:data:`~qrhead_integrations.fusion.MODEL_DEFAULT`: the model's own, chosen on its dev data; resolved
            when the scorer is built), a :class:`~qrhead_integrations.fusion.Fusion`, a mapping of its fields, a
            number (the first stage's weight alone) or ``None`` (QRHead alone). Normalised here, once. Scores
            (``score``, ``score_many``) are never fused.
        threads: torch threads for the scorer's forwards (``torch.set_num_threads`` around each call, restored
            after), or ``None`` (the default): whatever the process runs — torch's own default, every core this
            process may use, which for the default model was fastest alone (1.64x over one thread on 2 cores) and
            within 3% of one thread beside a busy process. Set it to leave cores to other work (``threads=1``
            beside another job cost that call about 3% on 2 cores) or to split a machine between workers
            (docs/engine.md, "Threads").
        study: the retired variants (:class:`StudyOptions`); leave at the default outside a study.
    """

    order: Order = "reversed"
    seed: int = 0
    debias: bool = False
    max_passage_tokens: int | None = 128
    max_length: int | None = None
    layout: Layout = "auto"
    show_progress: bool = False
    fusion: Fusion | float | Mapping[str, object] | Literal["default"] | None = MODEL_DEFAULT
    threads: int | None = None
    study: StudyOptions = field(default_factory=StudyOptions)

    def __post_init__(self) -> None:
        """Check the fields (a bad one raises :class:`~qrhead_integrations.errors.InvalidInputError`)."""
        object.__setattr__(self, "fusion", as_fusion_setting(self.fusion))  # validates the weights
        check_choice(self.order, "order", ("as_given", "reversed", "shuffled"))
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise InvalidInputError(f"seed must be an int, got {self.seed!r}")
        check_bool(self.debias, "debias")
        check_int(self.max_passage_tokens, "max_passage_tokens", minimum=1, optional=True)
        check_int(self.max_length, "max_length", minimum=64, optional=True)
        check_choice(self.layout, "layout", ("auto", "chat", "plain"))
        check_bool(self.show_progress, "show_progress")
        check_int(self.threads, "threads", minimum=1, optional=True)
        if not isinstance(self.study, StudyOptions):
            raise InvalidInputError(f"study must be a StudyOptions, got {type(self.study).__name__}")


def with_overrides(config: ScorerConfig | None, overrides: Mapping[str, object]) -> ScorerConfig:
    """``config`` (or the default) with keyword overrides, each routed to its place.

    :class:`ScorerConfig` fields replace their own; :class:`StudyOptions` fields (``calibrate``,
    ``outlier_filter``, ``query_part``) replace theirs inside :attr:`ScorerConfig.study`, so the study scripts'
    ``from_pretrained(..., calibrate=False)`` keeps working.

    Raises:
        OptionTypeError: an unknown name (a ``TypeError``, as for any unexpected keyword argument).
        InvalidInputError: a bad value.
    """
    base = config or ScorerConfig()
    own = {f.name for f in fields(ScorerConfig)}
    unknown = sorted(set(overrides) - own - set(STUDY_FIELDS))
    if unknown:
        raise OptionTypeError(
            f"unknown scorer option(s) {unknown}: ScorerConfig takes {sorted(own)}, and for studies "
            f"{list(STUDY_FIELDS)}"
        )
    study = {name: value for name, value in overrides.items() if name in STUDY_FIELDS}
    direct: dict[str, Any] = {name: value for name, value in overrides.items() if name in own}
    if study:
        direct["study"] = replace(direct.get("study", base.study), **study)
    return replace(base, **direct)
