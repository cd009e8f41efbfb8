"""A LangChain LLM / chat model over the scorer's own loaded model: one copy of the weights re-ranks and answers.

A local RAG chain needs a model to re-rank (or compress) and a model to answer. Loading the same checkpoint twice
doubles the memory for nothing; these functions wrap the model a QRHead component already holds in
``langchain-huggingface``'s :class:`~langchain_huggingface.HuggingFacePipeline` and
:class:`~langchain_huggingface.ChatHuggingFace`. Generation is unchanged by the scorer: its capturing attention
computes plain sdpa outside a scoring call (``tests/langchain/test_llm.py`` checks greedy outputs token for token).

Needs the ``langchain-hf`` extra (``langchain-huggingface``), imported only when called.

Caveat from LangChain's side: ``HuggingFacePipeline`` tokenises the rendered chat prompt as one string, so a
retrieved passage that contains the template's control tokens (``<|im_end|>``) is read as markup there. The
package's own :class:`~qrhead_integrations.reader.Reader` tokenises user text with control tokens split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._extras import missing_extra
from .._lazy import scorer_behind
from ..reader import stop_token_ids
from ..scorer import QRHeadScorer

if TYPE_CHECKING:
    from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline


def _scorer_of(source: object) -> QRHeadScorer:
    return scorer_behind(
        source, "a QRHead LangChain component (QRHeadReranker, QRHeadContextCompressor, QRHeadRetriever)"
    )


def huggingface_pipeline(source: object, *, max_new_tokens: int = 256, **pipeline_kwargs: Any) -> HuggingFacePipeline:  # noqa: ANN401 - generation options
    """A ``HuggingFacePipeline`` LLM over ``source``'s model (a scorer or a QRHead LangChain component).

    Args:
        source: a :class:`QRHeadScorer`, or a QRHead LangChain component (its model is loaded now if lazy).
        max_new_tokens: the most tokens per answer.
        **pipeline_kwargs: further generation options for each call (default greedy: ``do_sample=False``).
    """
    try:
        from langchain_huggingface import HuggingFacePipeline
        from transformers import pipeline
    except ImportError as exc:
        raise missing_extra(__name__, "langchain-huggingface>=1.2", "langchain-hf") from exc

    scorer = _scorer_of(source)
    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "return_full_text": False,
        "eos_token_id": stop_token_ids(scorer.tokenizer) or None,
        **pipeline_kwargs,
    }
    # The transformers pipeline holds the generation defaults (HuggingFacePipeline passes only per-call options).
    tokenizer: Any = scorer.tokenizer  # a fast tokenizer; transformers' overloads name its backend classes
    generate = pipeline("text-generation", model=scorer.model, tokenizer=tokenizer, **options)
    return HuggingFacePipeline(pipeline=generate, model_id=scorer.model_id, pipeline_kwargs=options)


def chat_model(source: object, *, max_new_tokens: int = 256, **pipeline_kwargs: Any) -> ChatHuggingFace:  # noqa: ANN401 - generation options
    """A ``ChatHuggingFace`` chat model over ``source``'s model, with its own tokenizer's chat template.

    The tokenizer is passed in, so nothing is fetched from a model hub (``ChatHuggingFace`` would otherwise load
    one by the model id).
    """
    try:
        from langchain_huggingface import ChatHuggingFace
    except ImportError as exc:
        raise missing_extra(__name__, "langchain-huggingface>=1.2", "langchain-hf") from exc

    scorer = _scorer_of(source)
    llm = huggingface_pipeline(scorer, max_new_tokens=max_new_tokens, **pipeline_kwargs)
    return ChatHuggingFace(llm=llm, tokenizer=scorer.tokenizer, model_id=scorer.model_id)
