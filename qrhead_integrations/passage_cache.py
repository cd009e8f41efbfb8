"""`PassageCache`: each passage's keys and values, kept by content so that later queries skip its forward pass.

In a RAG pipeline the same corpus chunks come back query after query; only the query is new. A cached passage is
encoded once in the parallel layout (:mod:`.parallel`: alone after the prompt's fixed opening) and every later
query reads it, so a query's forward covers its own few dozen tokens instead of every candidate's.

What a cache holds is keyed by a **namespace** (model, dtype, layout version, deepest layer, passage cut — the
scorer builds it) and the passage's title and text, hashed together: a passage encoded by another model or cut
differently is another entry. Entries are kept in 16-bit (``storage_dtype``, bfloat16 by default: half of float32's
bytes) and cast to the model's dtype when read. A fresh passage goes through the same storage before it is scored,
so a cold call and a warm call give identical scores.

Two tiers:

* **memory** — least-recently-used entries beyond ``max_bytes`` are dropped;
* **disk** (``directory``, optional) — one safetensors file per passage, written to a temporary name and renamed
  into place (readers never see half a file; concurrent writers of the same passage write the same bytes), with a
  CRC-32 of the tensors in its header. A file that does not parse, belongs to another namespace or fails its
  checksum raises :class:`~qrhead_integrations.errors.PassageCacheError` internally, is deleted with a warning and
  the passage is encoded again: a damaged cache costs time, never a wrong score. Beyond ``max_disk_bytes`` the
  least recently used files are deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from .errors import InvalidInputError, PassageCacheError
from .parallel import EncodedPassage
from .prompt import Passage

FORMAT_VERSION = "1"
"""Bumped when what a cached passage means changes (layout, block text): old entries are then never read."""

DEFAULT_MAX_BYTES = 1 << 30
"""In-memory bound: 1 GiB holds ~110,000 passage tokens of the default model at depth 17 in bf16 (9 KiB each)."""


def entry_key(namespace: str, passage: Passage) -> str:
    """The hex digest that names ``passage``'s entry in ``namespace``."""
    digest = hashlib.sha256()
    for part in (FORMAT_VERSION, namespace, passage.title, passage.text):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _nbytes(entry: EncodedPassage) -> int:
    return sum(t.numel() * t.element_size() for t in (*entry.keys, *entry.values))


def _checksum(tensors: dict[str, torch.Tensor]) -> str:
    crc = 0
    for name in sorted(tensors):
        crc = zlib.crc32(tensors[name].contiguous().view(torch.uint8).numpy().tobytes(), crc)
    return f"{crc:08x}"


class PassageCache:
    """Encoded passages by content, bounded in memory and optionally kept on disk.

    Args:
        max_bytes: bound of the in-memory tier (least recently used entries are dropped beyond it).
        directory: a folder for the disk tier (created if missing); ``None`` keeps entries in memory only.
        max_disk_bytes: bound of the disk tier; ``None``: unbounded.
        storage_dtype: the dtype entries are stored in (``torch.bfloat16``, ``torch.float16`` or
            ``torch.float32``).

    Thread-safe: one lock guards the memory tier; disk writes are atomic renames.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        directory: str | os.PathLike[str] | None = None,
        max_disk_bytes: int | None = None,
        storage_dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise InvalidInputError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        if max_disk_bytes is not None and (
            isinstance(max_disk_bytes, bool) or not isinstance(max_disk_bytes, int) or max_disk_bytes < 0
        ):
            raise InvalidInputError(f"max_disk_bytes must be a non-negative int or None, got {max_disk_bytes!r}")
        if storage_dtype not in (torch.bfloat16, torch.float16, torch.float32):
            raise InvalidInputError(f"storage_dtype must be bfloat16, float16 or float32, got {storage_dtype!r}")
        self.max_bytes = max_bytes
        self.max_disk_bytes = max_disk_bytes
        self.storage_dtype = storage_dtype
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._memory: OrderedDict[str, EncodedPassage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        """Entries and bytes held, and the folder of the disk tier."""
        where = f", directory={str(self.directory)!r}" if self.directory is not None else ""
        return f"PassageCache(entries={len(self)}, bytes={self._bytes}{where})"

    def __len__(self) -> int:
        """Entries held in memory."""
        return len(self._memory)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory."""
        return self._bytes

    def __reduce__(self) -> tuple[object, ...]:
        """A copy keeps the settings and the disk tier, not the memory tier (a lock cannot be pickled)."""
        return (_rebuild, (self.max_bytes, self.directory, self.max_disk_bytes, self.storage_dtype))

    # ------------------------------------------------------------------------------------------------ lookup
    def get_or_encode(
        self, namespace: str, passage: Passage, encode: Callable[[Passage], EncodedPassage]
    ) -> EncodedPassage:
        """The stored entry of ``passage`` in ``namespace``, encoding and storing it first when it is missing."""
        key = entry_key(namespace, passage)
        with self._lock:
            found = self._memory.get(key)
            if found is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                return found
        found = self._read(key, namespace)
        if found is None:
            self.misses += 1
            found = self._stored(encode(passage))
            self._write(key, namespace, found)
        else:
            self.hits += 1
        self._remember(key, found)
        return found

    def clear(self) -> None:
        """Drop the memory tier (the disk tier stays)."""
        with self._lock:
            self._memory.clear()
            self._bytes = 0

    def _stored(self, entry: EncodedPassage) -> EncodedPassage:
        cast = self.storage_dtype
        return EncodedPassage(
            length=entry.length,
            span=entry.span,
            keys=tuple(k.detach().to("cpu", cast).contiguous() for k in entry.keys),
            values=tuple(v.detach().to("cpu", cast).contiguous() for v in entry.values),
        )

    def _remember(self, key: str, entry: EncodedPassage) -> None:
        size = _nbytes(entry)
        with self._lock:
            if key in self._memory:
                return
            if size > self.max_bytes:
                return
            self._memory[key] = entry
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._memory.popitem(last=False)
                self._bytes -= _nbytes(dropped)

    # -------------------------------------------------------------------------------------------------- disk
    def _read(self, key: str, namespace: str) -> EncodedPassage | None:
        if self.directory is None:
            return None
        path = _entry_path(self.directory, key)
        if not path.exists():
            return None
        try:
            entry = _load(path, namespace)
        except PassageCacheError as exc:
            warnings.warn(f"{exc}; the file is deleted and the passage encoded again", stacklevel=3)
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):  # read-only folder: the order of eviction is then the writing order
            os.utime(path)  # least recently used = oldest modification time
        if entry.keys and entry.keys[0].dtype != self.storage_dtype:
            return self._stored(entry)
        return entry

    def _write(self, key: str, namespace: str, entry: EncodedPassage) -> None:
        if self.directory is None:
            return
        from safetensors.torch import save_file

        tensors = {f"k{i}": k for i, k in enumerate(entry.keys)} | {f"v{i}": v for i, v in enumerate(entry.values)}
        meta = {
            "namespace": namespace,
            "length": str(entry.length),
            "span": str(entry.span),
            "layers": str(len(entry.keys)),
            "crc32": _checksum(tensors),
        }
        path = _entry_path(self.directory, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            save_file(tensors, str(tmp), metadata=meta)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            warnings.warn(f"could not write the passage cache file {path}: {exc}", stacklevel=3)
            return
        if self.max_disk_bytes is not None:
            _evict(self.directory, self.max_disk_bytes)


def _entry_path(directory: Path, key: str) -> Path:
    return directory / key[:2] / f"{key}.safetensors"


def _evict(directory: Path, max_bytes: int) -> None:
    """Delete the least recently used files of ``directory`` until it holds at most ``max_bytes``."""
    files = []
    for path in directory.glob("*/*.safetensors"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # another process evicted it
            continue
        files.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files, key=lambda f: f[0]):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size


def _load(path: Path, namespace: str) -> EncodedPassage:
    """Read and verify one cache file (a typed error for anything but a sound entry of ``namespace``)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - not a dict
    except Exception as exc:  # safetensors raises several untyped errors on damaged files
        raise PassageCacheError(f"passage cache file {path} is unreadable ({type(exc).__name__})") from exc
    if meta.get("namespace") != namespace:
        raise PassageCacheError(f"passage cache file {path} belongs to another model or setting")
    try:
        layers, length, span = int(meta["layers"]), int(meta["length"]), int(meta["span"])
        keys = tuple(tensors[f"k{i}"] for i in range(layers))
        values = tuple(tensors[f"v{i}"] for i in range(layers))
    except (KeyError, ValueError) as exc:
        raise PassageCacheError(f"passage cache file {path} is incomplete") from exc
    if _checksum(tensors) != meta.get("crc32"):
        raise PassageCacheError(f"passage cache file {path} fails its checksum")
    if any(k.shape[-2] != length or v.shape != k.shape for k, v in zip(keys, values, strict=True)):
        raise PassageCacheError(f"passage cache file {path} has tensors of the wrong shape")
    return EncodedPassage(length=length, span=span, keys=keys, values=values)


def _rebuild(
    max_bytes: int, directory: Path | None, max_disk_bytes: int | None, storage_dtype: torch.dtype
) -> PassageCache:
    return PassageCache(
        max_bytes=max_bytes, directory=directory, max_disk_bytes=max_disk_bytes, storage_dtype=storage_dtype
    )
