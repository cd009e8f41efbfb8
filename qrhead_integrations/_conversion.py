"""Converting a GGUF model once into a 16-bit Hugging Face folder: the conversion cache's format.

Why 16 bit: a GGUF stores its matrices in quantised blocks (4 to 8 bits and a 16-bit scale per block), so the
float32 checkpoint that dequantising them gives spends 32 bits on about 5 bits of information: 2.4 GB on disk for
the default 0.5B model. No 16-bit type holds those values exactly (a 16-bit scale times a 4-to-8-bit integer
needs up to 19 significant bits), but float16's 11-bit significand holds them about eight times closer than
bfloat16's 8 bits (relative RMS error 2e-4 vs 1.5e-3 on every block type of the bundled models), while their
magnitudes (under 10) sit well inside float16's range. Each matrix is therefore stored in whichever of the two
holds it best (measured per tensor, so an unusual GGUF with huge or tiny weights gets bfloat16); the small
one-dimensional tensors (norm weights, biases, kept float32 by the GGUF itself) are stored in 16 bit only where
that is exact (it is for the bundled models), else float32. Loading casts once to the dtype that runs
(:func:`qrhead_integrations.models.resolve_dtype`).

The folder records its format in :data:`MARKER`; a cache folder's name includes :data:`CACHE_FORMAT`, so a
float32 folder written by an earlier version is never mistaken for a 16-bit one (it is left in place, unused).
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import re
import struct
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

CACHE_FORMAT = "gguf-16bit-1"
"""The converted folders' format; part of every cache folder's key, so a new format converts afresh."""
MARKER = "qrhead-conversion.json"
"""File in a converted folder naming its format, source and stored dtypes (older float32 folders lack it)."""

_CHUNK = 1 << 22  # elements per slice when measuring a cast's error: bounds the temporary memory to ~50 MB


def _squared_error(weight: torch.Tensor, dtype: torch.dtype) -> float:
    """Sum of squared differences between ``weight`` and its round trip through ``dtype`` (inf on overflow)."""
    flat = weight.detach().reshape(-1)
    total = 0.0
    for start in range(0, flat.numel(), _CHUNK):
        chunk = flat[start : start + _CHUNK]
        diff = chunk.to(dtype).to(chunk.dtype) - chunk
        total += float(diff.square().sum(dtype=torch.float64))
    return total


def storage_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype a dequantised tensor is stored in: the 16-bit type that holds it best (a vector: exactly).

    Why per tensor: float16 is the closer type for every matrix of the bundled models, but a GGUF from elsewhere
    may hold values beyond float16's range (overflow) or far below it (lost to underflow), which bfloat16 keeps;
    comparing the two round trips picks the right one without a list of cases. Vectors (norm weights, biases,
    float32 in the GGUF) are small, so one that neither type holds exactly stays float32; every vector of the
    bundled models is exact in float16, so their files are float16 throughout, and a float32 load casts every
    tensor and keeps no view of the file's memory map alive.
    """
    if not weight.is_floating_point() or weight.dtype in (torch.float16, torch.bfloat16):
        return weight.dtype
    fp16, bf16 = _squared_error(weight, torch.float16), _squared_error(weight, torch.bfloat16)
    if weight.ndim <= 1 and min(fp16, bf16) > 0:
        return weight.dtype
    return torch.float16 if fp16 <= bf16 else torch.bfloat16


def to_storage_dtypes(model: torch.nn.Module) -> Counter[str]:
    """Cast ``model``'s parameters in place to their :func:`storage_dtype`; count the elements per dtype.

    Parameters are visited once each, so tied weights (an embedding shared with the output layer) stay tied.
    """
    stored: Counter[str] = Counter()
    for param in model.parameters():
        dtype = storage_dtype(param.data)
        param.data = param.data.to(dtype)
        stored[str(dtype).removeprefix("torch.")] += param.numel()
    return stored


def stored_dtype(folder: Path) -> torch.dtype | None:
    """The one dtype every weight of a converted ``folder`` is stored in, per its :data:`MARKER`; else ``None``.

    Why: such a folder loads fastest in that dtype (the file is used in place, nothing converted) and is cast
    afterwards (:mod:`qrhead_integrations._casting`). A folder holding several dtypes (a GGUF with weights only
    bfloat16 holds well beside float16 ones), or without a readable marker, returns ``None``: loading it at the
    dtype that runs lets transformers cast each tensor from its own type.
    """
    try:
        record = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        names = list(record["stored_elements"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(names) != 1:
        return None
    found = getattr(torch, str(names[0]), None)
    return found if isinstance(found, torch.dtype) and found.is_floating_point else None


def older_caches(final: Path) -> list[Path]:
    """Folders beside ``final`` for the same model written by an earlier version (float32, no :data:`MARKER`).

    Only named to the user, never deleted here: another installation of an older version may still read one.
    """
    prefix = final.name.rsplit("-", 1)[0]
    pattern = re.compile(re.escape(prefix) + r"-[0-9a-f]{12,16}")
    if not final.parent.is_dir():
        return []
    return sorted(
        item
        for item in final.parent.iterdir()
        if item != final
        and pattern.fullmatch(item.name)
        and (item / "config.json").is_file()
        and not (item / MARKER).is_file()
    )


def release_memory() -> None:
    """Hand the memory a conversion freed back to the system before the model is loaded from its folder.

    Why: dequantising frees many mid-sized buffers that glibc's allocator keeps for reuse; without this the load
    that follows a conversion stacks on them (measured on SmolLM2: first-load peak 1.50 GB, 1.22 GB with it).
    A no-op where the C library has no ``malloc_trim`` (macOS, musl).
    """
    gc.collect()
    try:
        libc = ctypes.CDLL(None)
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim(0)
    except OSError:
        pass


def _folder_bytes(folder: Path) -> int:
    return sum(item.stat().st_size for item in folder.rglob("*") if item.is_file())


def announce(what: str, gguf_bytes: int, final: Path) -> None:
    """Say once, on standard error, what a first load does, why, where, and about how long it takes.

    Why standard error and not a logger: the conversion takes minutes with the process otherwise silent, and a
    library logger prints nothing unless the application configured logging.
    """
    # Measured on one core of a busy shared server (docs/engine.md, "Install and load cost"): about 20 s plus
    # 0.11 s per MB of GGUF (SmolLM2 35 s, Qwen-0.5B 75 s); the range covers a faster core and a busier machine.
    seconds = 20 + 0.11 * gguf_bytes / 1e6
    low, high = 0.7 * seconds, 2 * seconds
    took = f"{low:.0f}-{high:.0f} s" if high < 90 else f"{low / 60:.0f}-{high / 60:.0f} min"
    lines = [
        f"qrhead-integrations: first use of {what}: converting its GGUF weights ({gguf_bytes / 1e6:.0f} MB, "
        f"quantised) into a 16-bit checkpoint, once (about {took} on one CPU core); later loads read the "
        "checkpoint in seconds.",
        f"qrhead-integrations: checkpoint folder: {final}",
    ]
    for old in older_caches(final):
        lines.append(
            f"qrhead-integrations: {old} ({_folder_bytes(old) / 1e9:.1f} GB) is a float32 cache written by an "
            "earlier version and is no longer read; delete it to free the space unless an older installation "
            "still uses it."
        )
    print("\n".join(lines), file=sys.stderr, flush=True)


def gguf_tensor_count(path: Path) -> int:
    """The number of tensors a GGUF file declares in its header (0 if the header is not a GGUF one).

    Read from the first 24 bytes (magic, version, tensor count), so the progress bar knows its length before
    transformers parses the file; for a GGUF split over packages, the first part holds the header.
    """
    with path.open("rb") as handle:
        header = handle.read(24)
    if len(header) < 24 or header[:4] != b"GGUF":
        return 0
    version = struct.unpack_from("<I", header, 4)[0]
    return int(struct.unpack_from("<I" if version == 1 else "<Q", header, 8)[0])


def conversion_steps(gguf_header: Path) -> int:
    """Steps :func:`convert_gguf` reports: the tokenizer, reading the weights, one per tensor, writing."""
    return 3 + gguf_tensor_count(gguf_header)


class Progress:
    """The one progress bar a conversion draws, stage by stage (on a terminal only; elsewhere it stays silent).

    Why one bar: transformers draws three unexplained ones during a conversion (dequantising, loading, writing);
    this one names the stage. Its steps differ in length (reading the tokenizer takes as long as hundreds of
    tensors), so it shows the elapsed time and no rate or estimate, which would mislead.

    Args:
        label: what is converted, shown before the stage.
        total: the steps expected (:func:`conversion_steps`, plus any the caller adds); grown if exceeded.
    """

    def __init__(self, label: str, total: int) -> None:
        from tqdm.auto import tqdm

        self.label = label
        self.done = 0
        """Steps done so far (counted even where the bar is not drawn)."""
        self.total = total
        """Steps expected."""
        self._bar = tqdm(
            total=total,
            desc=label,
            unit="step",
            file=sys.stderr,
            disable=None,
            leave=False,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]",
        )

    def stage(self, text: str) -> None:
        """Name the stage now running."""
        self._bar.set_description_str(f"{self.label}: {text}")

    def step(self) -> None:
        """One step done."""
        self.done += 1
        if self.done > self.total:
            self.total = self._bar.total = self.done
        self._bar.update(1)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self._bar.close()


@contextmanager
def _count_gguf_tensors(progress: Progress) -> Iterator[None]:
    """Count transformers' dequantising of a GGUF, tensor by tensor, as steps of ``progress``.

    Why: transformers draws its own unconditional bar there (its progress switch does not cover it); this swaps
    that module's ``tqdm`` for a counter for the duration. Should transformers rename it, its bar simply shows.
    """
    try:
        module: Any = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    except ImportError:
        yield
        return
    original = getattr(module, "tqdm", None)
    if original is None:
        yield
        return

    def counting(iterable: Iterable[object], *_: object, **__: object) -> Iterator[object]:
        progress.step()  # the file is read: the tensors come next
        progress.stage("dequantising the weights")
        for item in iterable:
            yield item
            progress.step()

    module.tqdm = counting
    try:
        yield
    finally:
        module.tqdm = original


def convert_gguf(gguf_file: Path, out_dir: Path, progress: Progress, source: str) -> None:
    """Dequantise a GGUF model into ``out_dir``: config, 16-bit safetensors (:func:`storage_dtype`), tokenizer.

    The caller switches transformers' own progress bars off for the duration (``progress`` replaces them).

    Args:
        gguf_file: the GGUF model.
        out_dir: the folder to write (created).
        progress: the conversion's progress bar.
        source: what the folder was converted from, recorded in :data:`MARKER`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress.stage("reading the tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    progress.step()
    progress.stage("reading the weights")
    with _count_gguf_tensors(progress):
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32
        )
    # A GGUF-loaded model carries a quantizer marker that makes save_pretrained refuse; the weights are already
    # dequantised, so dropping the marker saves a plain checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    progress.stage("writing the 16-bit checkpoint")
    stored = to_storage_dtypes(model)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    record = {"format": CACHE_FORMAT, "source": source, "stored_elements": dict(sorted(stored.items()))}
    (out_dir / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    progress.step()
