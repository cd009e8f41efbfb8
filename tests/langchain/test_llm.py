"""One model for both jobs in LangChain: a ``ChatHuggingFace`` over the re-ranker's own weights."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
from qrhead_integrations.langchain.llm import chat_model, huggingface_pipeline
from tests.tiny_models import tiny_model

PROMPTS = ["The capital of France is", "Question: who wrote Hamlet?\nAnswer:"]


def _plain_outputs(model: Any, tokenizer: Any) -> list[str]:
    """Greedy continuations from the model before any scorer touched it (plain sdpa attention)."""
    from transformers import pipeline

    generate = pipeline("text-generation", model=model, tokenizer=tokenizer)
    return [
        generate(p, max_new_tokens=6, do_sample=False, return_full_text=False)[0]["generated_text"] for p in PROMPTS
    ]


def test_pipeline_llm_shares_the_scorers_model_and_generates_as_without_it(tokenizer: Any) -> None:
    model = tiny_model("llama", seed=5)
    before = _plain_outputs(model, tokenizer)
    scorer = QRHeadScorer(model, tokenizer, heads="1-0,2-3", model_id="tiny")
    reranker = QRHeadReranker(scorer=scorer, top_n=1)
    reranker.compress_documents([Document(page_content="Paris."), Document(page_content="Rome.")], "France?")
    llm = huggingface_pipeline(reranker, max_new_tokens=6)
    assert llm.pipeline.model is scorer.model  # one copy of the weights
    assert [llm.invoke(p) for p in PROMPTS] == before
    assert any(before)


def test_chat_model_uses_the_tokenizers_template_without_a_hub(tiny_scorer: QRHeadScorer) -> None:
    chat = chat_model(tiny_scorer, max_new_tokens=4)
    assert chat.tokenizer is tiny_scorer.tokenizer and chat.model_id == "tiny-llama"
    reply = chat.invoke([HumanMessage(content="Who wrote Hamlet?")])
    assert isinstance(reply.content, str)


def test_retriever_and_lazy_components_hand_out_their_model(tiny_scorer: QRHeadScorer, store: Any) -> None:
    retriever = QRHeadRetriever(base_retriever=store.as_retriever(), reranker=QRHeadReranker(scorer=tiny_scorer))
    assert huggingface_pipeline(retriever).pipeline.model is tiny_scorer.model


def test_other_objects_are_refused() -> None:
    with pytest.raises(TypeError, match="QRHeadScorer or a QRHead LangChain component"):
        huggingface_pipeline(object())
