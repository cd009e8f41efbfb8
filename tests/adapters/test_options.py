"""Every framework component refuses an option it does not have (naming it and the valid ones) instead of
ignoring it, and takes ``dtype`` as a first-class loading option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from qrhead_integrations.errors import InvalidInputError
from qrhead_integrations.langchain import QRHeadContextCompressor as LCCompressor
from qrhead_integrations.langchain import QRHeadReranker, QRHeadRetriever
from qrhead_integrations.llama_index import QRHeadContextCompressor as LICompressor
from qrhead_integrations.llama_index import QRHeadRerank


class _Fixed(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(page_content="Paris is in France.")]


@pytest.mark.parametrize(
    ("component", "misspelt", "meant"),
    [
        (QRHeadReranker, "topn", "top_n"),
        (QRHeadReranker, "dtpye", "dtype"),
        (LCCompressor, "budget_token", "budget_tokens"),
        (QRHeadRerank, "topn", "top_n"),
        (LICompressor, "topk", "top_k"),
    ],
)
def test_a_misspelt_option_is_an_error_naming_it_and_the_right_one(component: Any, misspelt: str, meant: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"no option '{misspelt}' \(did you mean '{meant}'\?\).*{meant}"):
        component(**{misspelt: 2})


@pytest.mark.parametrize("component", [QRHeadReranker, QRHeadRerank])
def test_an_unknown_option_without_a_near_name_is_an_error_too(component: Any) -> None:
    with pytest.raises(InvalidInputError, match="no option 'k'"):
        component(k=5)


def test_the_retriever_refuses_unknown_options() -> None:
    with pytest.raises(InvalidInputError, match="no option 'fetchk'"):
        QRHeadRetriever(base_retriever=_Fixed(), reranker=QRHeadReranker(), fetchk=5)


@pytest.mark.parametrize("component", [QRHeadReranker, QRHeadRerank])
def test_dtype_is_a_loading_option(component: Any, saved_tiny_model: Path) -> None:
    step = component(model=saved_tiny_model, heads="1-0", device="cpu", dtype="bfloat16")
    scorer = step.get_scorer() if hasattr(step, "get_scorer") else step.scorer
    assert scorer.dtype == torch.bfloat16
