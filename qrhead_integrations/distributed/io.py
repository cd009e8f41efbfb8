"""Reading the input rows and writing the results: Parquet or JSON Lines, one file or a folder."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from .._files import atomic_path, check_output_path
from ..errors import InvalidInputError, OutputPathError, OutputWriteError
from .jsonl import read_json_rows

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from ray.data import Dataset

JSON_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)


def _format_of(path: str) -> str:
    """``"parquet"`` or ``"json"`` from a file's suffix, or from the files inside a local folder."""
    suffix = Path(path).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in JSON_SUFFIXES:
        return "json"
    folder = Path(path)
    if folder.is_dir():
        suffixes = {p.suffix.lower() for p in folder.iterdir() if p.is_file()}
        if suffixes & set(PARQUET_SUFFIXES):
            return "parquet"
        if suffixes & set(JSON_SUFFIXES):
            return "json"
    raise InvalidInputError(
        f"cannot tell the format of {path!r}: give a .parquet or .jsonl file (or a folder of them), "
        "or pass a ray.data.Dataset"
    )


def read_input(
    ray: ModuleType, source: Dataset | str | os.PathLike[str], query_column: str, passages_column: str
) -> tuple[Dataset, bool]:
    """A Ray Dataset from ``source`` (returned as is when it already is one) and whether it was read here.

    Local JSON Lines are read and checked line by line here (see :mod:`.jsonl`), so a malformed line or a row
    whose passages Arrow cannot hold becomes an error row instead of a failed job; remote ones go to Ray as is.
    """
    from ray.data import Dataset  # loaded with `ray`

    if isinstance(source, Dataset):
        return source, False
    path = os.fspath(source)
    remote = "://" in path
    if not remote and not Path(path).exists():
        raise InvalidInputError(f"input {path!r} does not exist")
    if _format_of(path) == "parquet":
        return ray.data.read_parquet(path), True
    if remote:
        return ray.data.read_json(path), True
    files = (
        [Path(path)]
        if Path(path).is_file()
        else sorted(p for p in Path(path).iterdir() if p.is_file() and p.suffix.lower() in JSON_SUFFIXES)
    )
    return ray.data.from_arrow(read_json_rows(files, query_column, passages_column)), True


def check_output(output: str | os.PathLike[str]) -> None:
    """Fail before any work when ``output`` cannot be written.

    That is a file path that is a folder, or a folder path that is a file (remote prefixes are left to Ray).
    """
    path = os.fspath(output)
    if "://" in path:
        return
    if Path(path).suffix.lower() in PARQUET_SUFFIXES + JSON_SUFFIXES:
        check_output_path(path)
    elif Path(path).exists() and not Path(path).is_dir():
        raise OutputPathError(f"--output {path!r} is a file; give a folder, or a name ending in .parquet/.jsonl")


def write_output(ray: ModuleType, dataset: Dataset, output: str | os.PathLike[str]) -> Dataset:
    """Write ``dataset`` and return a dataset reading the written results back (nothing is computed twice).

    A path ending in ``.parquet`` or ``.jsonl``/``.json`` becomes one file, written by this process as the
    results stream in, under a temporary name renamed into place at the end. Any other path (a folder, or a
    ``s3://``-style prefix) gets Parquet files written by Ray's workers, one per block.
    """
    path = os.fspath(output)
    suffix = Path(path).suffix.lower()
    read_back = ray.data.read_parquet
    if suffix in PARQUET_SUFFIXES:
        _write_single(dataset, Path(path), _ParquetSink)
    elif suffix in JSON_SUFFIXES:
        _write_single(dataset, Path(path), _JsonLinesSink)
        read_back = ray.data.read_json
    else:
        dataset.write_parquet(path)
    written: Dataset = read_back(path)
    return written


def _write_single(dataset: Dataset, path: Path, sink_type: type[_Sink]) -> None:
    """Stream ``dataset`` into one file; if writing fails, keep every scored row in the temp folder instead.

    The batches written so far are held until the file is complete: a write that fails (a full disk) after
    hours of scoring then loses nothing — they and the batches still to come go to a rescue file, and the error
    names both paths.

    Raises:
        OutputWriteError: the file could not be written; the message names the rescue file.
    """
    done: list[pa.Table] = []
    batches = iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
    try:
        with atomic_path(path) as tmp:
            sink = sink_type(tmp)
            try:
                for table in batches:
                    done.append(table)
                    sink.write(table)
            finally:
                sink.close()
    except OSError as exc:
        rescued, rows = _rescue(path, sink_type, [*done, *batches])
        raise OutputWriteError(f"could not write {path} ({exc}); the {rows} scored rows are kept in {rescued}") from exc


def _rescue(path: Path, sink_type: type[_Sink], tables: Iterable[pa.Table]) -> tuple[Path, int]:
    """Write ``tables`` to a new file in the temp folder, in ``path``'s format; return where and how many rows."""
    fd, name = tempfile.mkstemp(prefix=f"qrhead-rescued-{path.stem}-", suffix=path.suffix)
    os.close(fd)
    sink = sink_type(Path(name))
    rows = 0
    try:
        for table in tables:
            sink.write(table)
            rows += table.num_rows
    finally:
        sink.close()
    return Path(name), rows


class _Sink:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, table: pa.Table) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _JsonLinesSink(_Sink):
    """JSON Lines; non-finite scores (``-inf`` for empty passages) become ``null``, which JSON can carry."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._file = path.open("w", encoding="utf-8")

    def write(self, table: pa.Table) -> None:
        for row in table.to_pylist():
            self._file.write(json.dumps(_finite(row), ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        self._file.close()


class _ParquetSink(_Sink):
    """One Parquet file; every batch is cast to the first batch's schema."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        elif table.schema != self._writer.schema:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        else:  # no rows at all: still a valid (empty) Parquet file
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({}), self.path)


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
