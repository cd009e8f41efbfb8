"""`qrhead_integrations._files`: output paths checked up front, atomic writes with ordinary permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from qrhead_integrations._files import atomic_path, check_output_path, rescue_text, write_text_atomic
from qrhead_integrations.errors import OutputPathError, QRHeadError


def test_check_output_path_accepts_new_files_in_missing_folders(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "a" / "b" / "out.json") == tmp_path / "a" / "b" / "out.json"
    (tmp_path / "old.json").write_text("{}")
    assert check_output_path(tmp_path / "old.json") == tmp_path / "old.json"  # overwriting is allowed


def test_check_output_path_rejects_folders_and_paths_under_files(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match=r"--output .* is a directory"):
        check_output_path(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match=r"--plot .* is not a directory") as info:
        check_output_path(tmp_path / "file" / "sub" / "p.png", option="--plot")
    assert isinstance(info.value, QRHeadError) and isinstance(info.value, ValueError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_path_rejects_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="no permission"):
            check_output_path(folder / "out.json")
    finally:
        folder.chmod(0o700)


def test_atomic_writes_get_ordinary_permissions_not_the_temp_files_0600(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        target = write_text_atomic(tmp_path / "report.json", "{}\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "heads.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("interrupted")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["heads.json"]


def test_rescue_text_keeps_the_result_in_the_temp_folder() -> None:
    path = rescue_text("report.json", '{"ok": true}')
    try:
        assert path.suffix == ".json" and path.read_text(encoding="utf-8") == '{"ok": true}'
    finally:
        path.unlink()
