"""Loading a 16-bit converted folder: read in place, cast to the running dtype, layers and head on first use."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from qrhead_integrations import QRHeadScorer
from qrhead_integrations._casting import cast_pending, cast_weights, pending
from qrhead_integrations._conversion import CACHE_FORMAT, MARKER, stored_dtype
from qrhead_integrations.models import load_model

from .concurrency import run_in_threads
from .tiny_models import tiny_model, tiny_tokenizer


def _converted(folder: Path, *, tie: bool = False, stored: dict[str, int] | None = None) -> Path:
    """A tiny qwen2 saved as the conversion saves a bundled model: float16 weights and the marker."""
    model = tiny_model("qwen2", tie_word_embeddings=tie).to(torch.float16)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    elements = stored or {"float16": sum(p.numel() for p in model.parameters())}
    (folder / MARKER).write_text(json.dumps({"format": CACHE_FORMAT, "stored_elements": elements}))
    return folder


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _converted(tmp_path_factory.mktemp("converted"))


def _reference(folder: Path, dtype: torch.dtype) -> Any:
    """transformers' own load of the folder at ``dtype``: what the cast must reproduce exactly."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()


def _dtypes(module: torch.nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in module.parameters()}


def test_the_stored_dtype_is_read_from_the_marker_and_only_a_single_one_counts(tmp_path: Path) -> None:
    assert stored_dtype(tmp_path) is None  # no marker: an older folder, or a user's own
    for elements, expected in (
        ({"float16": 10}, torch.float16),
        ({"bfloat16": 10}, torch.bfloat16),
        ({"float16": 10, "float32": 2}, None),  # mixed: transformers casts each tensor from its own type
        ({"int8": 10}, None),
        ({"no_such_dtype": 10}, None),
    ):
        (tmp_path / MARKER).write_text(json.dumps({"format": CACHE_FORMAT, "stored_elements": elements}))
        assert stored_dtype(tmp_path) == expected, elements
    (tmp_path / MARKER).write_text("not json")
    assert stored_dtype(tmp_path) is None


def test_a_float16_folder_loads_as_float32_equal_to_transformers_own_cast(converted: Path) -> None:
    loaded = load_model(converted, dtype="float32")
    model = loaded.model
    layers = model.get_decoder().layers
    # At once: what model.dtype and the masks read; on first use: the layers and the untied head.
    assert model.dtype == torch.float32 and model.get_input_embeddings().weight.dtype == torch.float32
    assert all(_dtypes(layer) == {torch.float16} for layer in layers)
    assert model.get_output_embeddings().weight.dtype == torch.float16
    ids = torch.tensor([[5, 9, 14, 3, 22, 7]])
    with torch.inference_mode():
        logits = model(ids).logits
    reference = _reference(converted, torch.float32)
    with torch.inference_mode():
        expected = reference(ids).logits
    assert logits.dtype == torch.float32 and torch.equal(logits, expected)
    assert pending(model, torch.float32) == 0
    ours, theirs = model.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    for name, tensor in ours.items():
        assert tensor.dtype == theirs[name].dtype and torch.equal(tensor, theirs[name]), name
    for (name, buffer), (_, other) in zip(model.named_buffers(), reference.named_buffers(), strict=True):
        assert buffer.dtype == other.dtype and torch.equal(buffer, other), name


def test_scoring_casts_only_the_layers_it_reads_and_ranks_as_the_float32_load(converted: Path) -> None:
    loaded = load_model(converted, dtype="float32")
    scorer = QRHeadScorer(loaded.model, loaded.tokenizer, heads="1-0,1-1")
    reference = QRHeadScorer(_reference(converted, torch.float32), loaded.tokenizer, heads="1-0,1-1")
    passages = ["The moon orbits the earth.", "Paris is the capital of France.", "Cats are animals."]
    scores = scorer.score("Which city is the capital of France?", passages)
    assert scores == pytest.approx(reference.score("Which city is the capital of France?", passages), abs=1e-6)
    layers = loaded.model.get_decoder().layers
    assert [_dtypes(layer) for layer in layers] == [{torch.float32}] * 2 + [{torch.float16}] * 2  # stops at layer 1
    assert loaded.model.get_output_embeddings().weight.dtype == torch.float16  # scoring never reads the head


def test_a_first_forward_in_inference_mode_leaves_ordinary_weights(converted: Path) -> None:
    model = load_model(converted, dtype="float32").model
    with torch.inference_mode():
        model(torch.tensor([[1, 2, 3]]))
    assert not any(p.is_inference() for p in model.parameters())
    logits = model(torch.tensor([[1, 2, 3]])).logits  # grad mode afterwards: weights usable outside inference
    logits.sum().backward()
    assert all(p.grad is not None for p in model.get_decoder().layers[0].parameters())


def test_cast_pending_casts_everything_and_drops_the_hooks(converted: Path) -> None:
    model = load_model(converted, dtype="float32").model
    assert pending(model, torch.float32) > 0
    cast_pending(model, torch.float32)
    assert pending(model, torch.float32) == 0
    assert not any(m._forward_pre_hooks for m in model.modules())
    model(torch.tensor([[1, 2]]))  # nothing left to fire


def test_a_bfloat16_load_equals_transformers_and_an_int8_load_casts_at_once(converted: Path) -> None:
    bf16 = load_model(converted, dtype="bfloat16").model
    reference = _reference(converted, torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    with torch.inference_mode():
        assert torch.equal(bf16(torch.tensor([[4, 5, 6]])).logits, reference(torch.tensor([[4, 5, 6]])).logits)
    assert pending(bf16, torch.bfloat16) == 0
    quantized = load_model(converted, quantize="int8").model  # dynamic int8 needs float32 Linear weights first
    assert pending(quantized, torch.float32) == 0
    assert any(type(m).__name__ == "Linear" and "quantized" in type(m).__module__ for m in quantized.modules())


def test_a_tied_head_is_cast_with_the_embeddings_and_stays_tied(tmp_path: Path) -> None:
    model = load_model(_converted(tmp_path, tie=True), dtype="float32").model
    head, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    assert head.weight is embeddings.weight and head.weight.dtype == torch.float32
    with torch.inference_mode():
        model(torch.tensor([[1, 2]]))
    assert head.weight is embeddings.weight and pending(model, torch.float32) == 0


def test_a_mixed_dtype_folder_is_cast_by_transformers_at_load(tmp_path: Path) -> None:
    folder = _converted(tmp_path, stored={"float16": 100, "float32": 10})
    model = load_model(folder, dtype="float32").model
    assert pending(model, torch.float32) == 0 and not any(m._forward_pre_hooks for m in model.modules())


def test_two_threads_first_forwards_cast_once_and_agree(converted: Path) -> None:
    model = load_model(converted, dtype="float32").model
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(ids).logits

    results, errors = run_in_threads(run, 4)
    assert not errors and len(results) == 4
    assert all(torch.equal(r, results[0]) for r in results)
    assert pending(model, torch.float32) == 0


@pytest.mark.parametrize("duplicate", ["deepcopy", "pickle"])
def test_a_copy_made_before_the_first_forward_casts_itself(converted: Path, duplicate: str) -> None:
    model = load_model(converted, dtype="float32").model
    if duplicate == "deepcopy":
        twin = copy.deepcopy(model)
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        twin = torch.load(buffer, weights_only=False)
    with torch.inference_mode():
        twin(torch.tensor([[1, 2, 3]]))
    assert pending(twin, torch.float32) == 0
    assert pending(model, torch.float32) > 0  # the original still waits for its own first forward
    with torch.inference_mode():
        assert torch.equal(model(torch.tensor([[1, 2, 3]])).logits, twin(torch.tensor([[1, 2, 3]])).logits)


def test_cast_weights_on_a_plain_module_casts_everything_now() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)).to(torch.float16)
    cast_weights(module, torch.float32)  # no get_decoder: nothing to defer
    assert _dtypes(module) == {torch.float32}
