"""The conversion cache in 16 bit (issue #33): storage dtypes, the cache key, the first-load notice, rankings."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
import torch

from qrhead_integrations import QRHeadScorer, models
from qrhead_integrations._conversion import (
    CACHE_FORMAT,
    MARKER,
    Progress,
    _count_gguf_tensors,
    conversion_steps,
    gguf_tensor_count,
    storage_dtype,
)
from qrhead_integrations._conversion import to_storage_dtypes as cast_for_storage
from qrhead_integrations.models import BUNDLED_MODELS, converted_bundled_model, needs_conversion

SMOL = "smollm2-135m-instruct"


def test_tensors_take_the_16bit_type_that_holds_them_best_and_inexact_vectors_stay_float32() -> None:
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(64, 64, generator=generator) * 0.05  # the bundled models' range: float16 is closer
    assert storage_dtype(weights) == torch.float16
    assert storage_dtype(weights * 1e7) == torch.bfloat16  # beyond float16's 65504: it would overflow
    assert storage_dtype(weights * 1e-6) == torch.bfloat16  # far below float16's normal range: it would underflow
    norm = torch.randn(64, generator=generator)
    assert storage_dtype(norm) == torch.float32  # a vector no 16-bit type holds exactly is kept as it is
    assert storage_dtype(norm.half().float()) == torch.float16  # one that float16 holds exactly is stored so
    assert storage_dtype(norm.bfloat16().float() * 2**20) == torch.bfloat16  # beyond float16, exact in bfloat16


def test_casting_for_storage_keeps_tied_weights_tied_and_counts_elements() -> None:
    embedding = torch.nn.Embedding(50, 8)
    head = torch.nn.Linear(8, 50, bias=False)
    head.weight = embedding.weight  # tied, as SmolLM2's output layer and embedding are
    norm = torch.nn.LayerNorm(8)
    torch.nn.init.normal_(norm.weight)  # not exact in 16 bit; its bias, zeros, is
    model = torch.nn.Sequential(embedding, norm, head)
    stored = cast_for_storage(model)
    assert head.weight is embedding.weight and head.weight.dtype == torch.float16
    assert (norm.weight.dtype, norm.bias.dtype) == (torch.float32, torch.float16)
    assert stored == {"float16": 50 * 8 + 8, "float32": 8}  # the tied matrix counted once


def test_the_conversion_counts_transformers_gguf_tensors_instead_of_its_bar(capsys: pytest.CaptureFixture[str]) -> None:
    """The seam is transformers' own module: this fails if transformers renames it (its bar would then show)."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    with Progress("test", total=4) as progress, _count_gguf_tensors(progress):
        tensors = gguf_utils.tqdm(["a", "b", "c"], desc="Converting and de-quantizing GGUF tensors...")
        assert list(tensors) == ["a", "b", "c"]
        assert (progress.done, progress.total) == (4, 4)  # the file read, then one step per tensor
    assert gguf_utils.tqdm is original
    assert "de-quantizing" not in capsys.readouterr().err


def test_the_bar_knows_its_length_from_the_gguf_header(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 272, 30) + b"\0" * 100)
    assert gguf_tensor_count(gguf) == 272
    assert conversion_steps(gguf) == 275  # the tokenizer, reading the file, 272 tensors, writing
    (tmp_path / "other.bin").write_bytes(b"not a gguf file at all, no header")
    assert gguf_tensor_count(tmp_path / "other.bin") == 0
    with Progress("test", total=1) as progress:
        progress.step()
        progress.step()  # more steps than expected: the total follows
        assert (progress.done, progress.total) == (2, 2)


def _fake_bundled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """SmolLM2 as installed from a stand-in GGUF file, converted by a stub that records its calls."""
    gguf = tmp_path / "stand-in.gguf"
    gguf.write_bytes(b"\0" * 2_000_000)
    bundled = BUNDLED_MODELS[SMOL]
    monkeypatch.setitem(BUNDLED_MODELS, SMOL, type(bundled)(**{**bundled.__dict__, "find_parts": lambda: [gguf]}))
    calls: list[str] = []

    def convert(gguf_file: Path, out_dir: Path, progress: Progress, source: str) -> None:
        calls.append(source)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text("{}")
        (out_dir / MARKER).write_text(json.dumps({"format": CACHE_FORMAT}))

    monkeypatch.setattr(models, "convert_gguf", convert)
    return calls


def test_an_older_float32_cache_is_not_read_and_is_named_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _fake_bundled(monkeypatch, tmp_path)
    cache = tmp_path / "cache"
    # The folder an earlier version converted into: keyed by the packages' versions alone, float32, no marker.
    old_key = hashlib.sha256(BUNDLED_MODELS[SMOL].version_key().encode()).hexdigest()[:12]
    old = cache / "models" / f"{SMOL}-{old_key}"
    old.mkdir(parents=True)
    (old / "config.json").write_text("{}")
    (old / "model.safetensors").write_bytes(b"\0" * 1000)
    assert needs_conversion(SMOL, cache=cache)  # the float32 folder does not count as converted

    folder = converted_bundled_model(SMOL, cache=cache)
    first = capsys.readouterr().err
    assert folder != old and folder.parent == old.parent and len(calls) == 1
    assert "converting its GGUF weights (2 MB, quantised) into a 16-bit checkpoint, once" in first
    assert f"checkpoint folder: {folder}\n" in first
    assert str(old) in first and "no longer read" in first
    assert old.is_dir()  # named, never deleted: an older installation may still use it
    assert not needs_conversion(SMOL, cache=cache)

    assert converted_bundled_model(SMOL, cache=cache) == folder
    assert len(calls) == 1 and capsys.readouterr().err == ""  # a later load converts nothing and says nothing


@pytest.mark.real_model
def test_the_cache_holds_16bit_matrices_and_loads_cast_to_the_running_dtype(smollm2: QRHeadScorer) -> None:
    from safetensors import safe_open

    folder = converted_bundled_model(SMOL)  # the folder the session's scorer was loaded from
    assert json.loads((folder / MARKER).read_text())["format"] == CACHE_FORMAT
    elements = 0
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        for name in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
            part = weights.get_slice(name)
            shape, dtype = part.get_shape(), part.get_dtype()
            assert dtype == "F16", (name, shape, dtype)  # the norm weights too: float16 holds them exactly
            elements += int(torch.tensor(shape).prod())
    assert (folder / "model.safetensors").stat().st_size < 0.51 * 4 * elements  # about half the float32 file
    # Cast to the running dtype: at load what the masks read, the layers and head on their first forward.
    assert smollm2.dtype == torch.float32
    with torch.inference_mode():
        smollm2.model(torch.tensor([[1, 2, 3]]))
    assert {p.dtype for p in smollm2.model.parameters()} == {torch.float32}


def _row_passages(row: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], p["text"]) for p in row["passages"]]


@pytest.mark.real_model
def test_the_16bit_cache_ranks_as_the_float32_conversion_did(
    smollm2: QRHeadScorer, hotpotqa_rows: list[dict[str, Any]]
) -> None:
    """The float32 cache was the GGUF dequantised to float32 and saved; loading the GGUF directly rebuilds it.

    Measured on rows 100-119 (default configuration, run in float32): float16 storage moves a score by at most
    0.09% of the row's score range and keeps every row's full order; bfloat16 storage moved them by up to 0.88%.
    The bound, 0.3% of the range, leaves room for another CPU's float32 rounding and fails for bfloat16 storage.
    Top passages are compared outside near-ties (within that bound of each other).
    """
    from transformers import AutoModelForCausalLM

    (gguf,) = BUNDLED_MODELS[SMOL].find_parts() or []
    assert gguf_tensor_count(gguf) == 272  # the header the progress bar reads: SmolLM2's 272 tensors
    float32 = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    reference = QRHeadScorer(float32.eval(), smollm2.tokenizer, model_id=SMOL)
    assert reference.heads == smollm2.heads and reference.config == smollm2.config
    for row in hotpotqa_rows[100:104]:
        ours = torch.tensor(smollm2.score(row["question"], _row_passages(row)))
        exact = torch.tensor(reference.score(row["question"], _row_passages(row)))
        bound = 0.003 * float(exact.max() - exact.min())
        assert float((ours - exact).abs().max()) <= bound
        order, our_order = torch.argsort(exact, descending=True), torch.argsort(ours, descending=True)
        for top in (1, 2):  # the top passage and the top two, each compared where it is clear of the next
            if float(exact[order[top - 1]] - exact[order[top]]) > 2 * bound:
                assert set(our_order[:top].tolist()) == set(order[:top].tolist())
