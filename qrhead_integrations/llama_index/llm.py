"""A LlamaIndex ``HuggingFaceLLM`` over the scorer's own loaded model: one copy of the weights re-ranks and answers.

A local query engine needs a model to re-rank (or compress) nodes and an LLM to synthesise the answer; these
wrap the model a QRHead postprocessor already holds in ``llama-index-llms-huggingface``'s
:class:`~llama_index.llms.huggingface.HuggingFaceLLM` (model and tokenizer objects passed in, so nothing is
downloaded). Generation is unchanged by the scorer: its capturing attention computes plain sdpa outside a
scoring call (``tests/llama_index/test_llm.py`` checks greedy outputs token for token).

Needs the ``llamaindex-hf`` extra (``llama-index-llms-huggingface``), imported only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._extras import missing_extra
from .._lazy import scorer_behind
from ..reader import stop_token_ids
from ..scorer import QRHeadScorer

if TYPE_CHECKING:
    from llama_index.llms.huggingface import HuggingFaceLLM


def _scorer_of(source: object) -> QRHeadScorer:
    return scorer_behind(source, "a QRHead LlamaIndex postprocessor (QRHeadRerank, QRHeadContextCompressor)")


def huggingface_llm(source: object, *, max_new_tokens: int = 256, **llm_kwargs: Any) -> HuggingFaceLLM:  # noqa: ANN401 - HuggingFaceLLM options
    """A ``HuggingFaceLLM`` over ``source``'s model (a scorer or a QRHead postprocessor).

    Args:
        source: a :class:`QRHeadScorer`, or a QRHead LlamaIndex postprocessor (its model is loaded now if lazy).
        max_new_tokens: the most tokens per answer.
        **llm_kwargs: further ``HuggingFaceLLM`` arguments (``context_window``, ``generate_kwargs``,
            ``system_prompt``...); defaults: the model's own window, greedy decoding, the tokenizer's chat
            template, stopping at its end-of-turn token.
    """
    try:
        from llama_index.llms.huggingface import HuggingFaceLLM
    except ImportError as exc:
        raise missing_extra(__name__, "llama-index-llms-huggingface>=0.6", "llamaindex-hf") from exc

    scorer = _scorer_of(source)
    window = int(getattr(scorer.model.config, "max_position_embeddings", 0) or 4096)
    options: dict[str, Any] = {
        "context_window": window,
        "max_new_tokens": max_new_tokens,
        "generate_kwargs": {"do_sample": False},
        "stopping_ids": stop_token_ids(scorer.tokenizer),
        "is_chat_model": bool(getattr(scorer.tokenizer, "chat_template", None)),
        **llm_kwargs,
    }
    return HuggingFaceLLM(
        model=scorer.model,
        tokenizer=scorer.tokenizer,
        model_name=scorer.model_id,
        tokenizer_name=scorer.model_id,
        **options,
    )
