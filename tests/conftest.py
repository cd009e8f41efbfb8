"""Shared fixtures: tiny random models (fast, in code) and the real bundled SmolLM2 loaded once per session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.tiny_models import tiny_model, tiny_tokenizer
from tests.workers import share_the_cores

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


share_the_cores()


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def plain_tokenizer() -> Any:
    return tiny_tokenizer(chat_template=False)


@pytest.fixture(scope="session")
def tiny_llama() -> Any:
    return tiny_model("llama")


@pytest.fixture(scope="session")
def saved_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama saved to a folder: what a lazily loading component is pointed at with ``model=``."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_scorer(tiny_llama: Any, tokenizer: Any) -> Any:
    from qrhead_integrations import QRHeadScorer

    return QRHeadScorer(tiny_llama, tokenizer, heads="1-0,2-3,2-1", model_id="tiny-llama")


def _require_bundled(name: str) -> None:
    from qrhead_integrations.models import BUNDLED_MODELS

    if BUNDLED_MODELS[name].find_parts() is None:
        pytest.fail(
            f"bundled model {name} is not installed; the README's test command installs it "
            f"({BUNDLED_MODELS[name].install_hint})"
        )


@pytest.fixture(scope="session")
def smollm2() -> Any:
    """The real SmolLM2-135M-Instruct scorer (bundled, offline), loaded once per test session, in float32.

    float32 whatever the machine's default dtype (bf16 on CPUs with AMX): the exactness tests compare it with
    float32 eager attention, and the figures it is tested against were measured in float32.
    """
    from qrhead_integrations import QRHeadScorer

    _require_bundled("smollm2-135m-instruct")
    return QRHeadScorer.from_pretrained("smollm2-135m-instruct", dtype="float32")


@pytest.fixture(scope="session")
def hotpotqa_rows() -> list[dict[str, Any]]:
    path = SHARED_DATA / "hotpotqa" / "hotpotqa_dev200.jsonl"
    if not path.is_file():
        pytest.fail(f"{path} is missing: tests expect ../shared/data beside the checkout")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, then the other real-model ones (a stable sort): the test workers take whole files in
    this order, so the long files start at once instead of last, and the run ends when the short ones run out."""
    items.sort(key=lambda item: (not item.get_closest_marker("slow"), not item.get_closest_marker("real_model")))
