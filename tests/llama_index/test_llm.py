"""One model for both jobs in LlamaIndex: a ``HuggingFaceLLM`` over the postprocessor's own weights."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from qrhead_integrations import QRHeadScorer
from qrhead_integrations.llama_index import QRHeadRerank
from qrhead_integrations.llama_index.llm import huggingface_llm
from tests.tiny_models import tiny_model

PROMPTS = ["The capital of France is", "Question: who wrote Hamlet?\nAnswer:"]


def _plain_outputs(model: Any, tokenizer: Any) -> list[str]:
    outputs = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        outputs.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
    return outputs


def test_llm_shares_the_postprocessors_model_and_generates_as_without_it(tokenizer: Any) -> None:
    model = tiny_model("llama", seed=6)
    before = _plain_outputs(model, tokenizer)
    scorer = QRHeadScorer(model, tokenizer, heads="1-0,2-3", model_id="tiny")
    rerank = QRHeadRerank(scorer=scorer, top_n=1)
    nodes = [NodeWithScore(node=TextNode(text=t)) for t in ("Paris.", "Rome.")]
    rerank.postprocess_nodes(nodes, QueryBundle("France?"))
    llm = huggingface_llm(rerank, max_new_tokens=6, is_chat_model=False)
    assert llm._model is scorer.model  # one copy of the weights
    assert [llm.complete(p).text for p in PROMPTS] == before
    assert llm.context_window == 2048 and llm.metadata.model_name == "tiny"


def test_other_objects_are_refused() -> None:
    with pytest.raises(TypeError, match="QRHeadScorer or a QRHead LlamaIndex postprocessor"):
        huggingface_llm(object())
