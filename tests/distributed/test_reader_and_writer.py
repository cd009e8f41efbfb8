"""The batch job's JSON Lines reader and single-file writer on hostile files, without a Ray session.

Each line is one row whatever it holds (a lone surrogate escape, 100,000 nested brackets, a JSON array, a byte
order mark), and a write that fails at the end (a full disk) keeps every scored row in the temp folder.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from qrhead_integrations.distributed import io  # noqa: E402 - after the importorskip
from qrhead_integrations.distributed.jsonl import INPUT_ERROR, read_json_rows  # noqa: E402
from qrhead_integrations.errors import OutputWriteError, QRHeadError  # noqa: E402

GOOD = b'{"query": "q", "passages": ["a", {"title": "t", "text": "b"}]}'


def _errors(path: Path) -> list[str | None]:
    table = read_json_rows([path], "query", "passages")
    errors: list[str | None] = table.column(INPUT_ERROR).to_pylist()
    return errors


def test_a_lone_surrogate_escape_is_one_error_row_not_a_failed_job(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    lines = [GOOD, b'{"query": "Wh\\udfffo?", "passages": ["a"]}', b'{"query": "q", "passages": ["x"], "n": "\\ud800"}']
    path.write_bytes(b"\n".join([*lines, GOOD]) + b"\n")
    errors = _errors(path)
    assert errors[0] is None and errors[3] is None
    assert errors[1] is not None and errors[1].startswith(f"UnencodableTextError: {path}:2: a lone surrogate U+DFFF")
    assert errors[2] is not None and f"{path}:3" in errors[2]


def test_a_line_of_100000_brackets_is_one_error_row(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(GOOD + b"\n" + b"[" * 100_000 + b"\n" + GOOD + b"\n")
    assert _errors(path) == [None, f"DataFormatError: {path}:2: not JSON (nested too deeply to read)", None]


def test_a_jsonl_file_whose_first_line_is_an_array_keeps_every_good_row(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"[1, 2]\n" + GOOD + b"\n" + GOOD + b"\n")
    errors = _errors(path)
    assert len(errors) == 3 and errors[1:] == [None, None]
    assert errors[0] == f"DataFormatError: {path}:1: a row must be a JSON object, got list"


def test_a_json_file_holding_one_array_is_still_read_as_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_bytes(b"[" + GOOD + b",\n" + GOOD + b"]")
    assert _errors(path) == [None, None]
    lines = tmp_path / "lines.json"  # a .json file of lines whose first line is an array: read by lines
    lines.write_bytes(b"[1]\n" + GOOD + b"\n")
    assert _errors(lines)[1] is None


def test_a_byte_order_mark_does_not_spoil_the_first_row(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD + b"\n" + GOOD + b"\n")
    assert _errors(path) == [None, None]


class _Dataset:
    """What ``write_output`` reads of a Ray dataset: its batches as Arrow tables."""

    def __init__(self, tables: list[Any]) -> None:
        self.tables = tables

    def iter_batches(self, **_: object) -> Iterator[Any]:
        return iter(self.tables)


class _FakeRay:
    """Reading the result back is never reached when the write fails."""

    class data:  # ``ray.data``
        read_parquet = read_json = None


def _tables() -> list[Any]:
    return [
        pa.table({"query": [f"q{b}{i}" for i in range(3)], "scores": [[0.5, float("-inf")]] * 3, "error": [None] * 3})
        for b in range(3)
    ]


@pytest.mark.parametrize(("suffix", "sink"), [(".jsonl", io._JsonLinesSink), (".parquet", io._ParquetSink)])
def test_a_full_disk_keeps_every_scored_row_in_the_temp_folder_and_names_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, sink: type[Any]
) -> None:
    original = sink.write
    calls: list[int] = []

    def full_disk(self: Any, table: Any) -> None:
        if "qrhead-rescued" not in self.path.name and len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        calls.append(1)
        original(self, table)

    monkeypatch.setattr(sink, "write", full_disk)
    output = tmp_path / f"out{suffix}"
    with pytest.raises(OutputWriteError) as raised:
        io.write_output(_FakeRay(), _Dataset(_tables()), output)  # type: ignore[arg-type]
    message = str(raised.value)
    assert isinstance(raised.value, QRHeadError) and isinstance(raised.value, OSError)
    assert str(output) in message and "No space left on device" in message and "9 scored rows" in message
    rescued = Path(message.rsplit(" kept in ", 1)[1])
    assert rescued.name.startswith("qrhead-rescued-out-") and rescued.suffix == suffix
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in rescued.read_text(encoding="utf-8").splitlines()]
    else:
        rows = pq.read_table(rescued).to_pylist()
    rescued.unlink()
    assert [row["query"] for row in rows] == [f"q{b}{i}" for b in range(3) for i in range(3)]
    assert not output.exists() and not list(tmp_path.glob(".out*"))
