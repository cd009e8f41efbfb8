"""Writing result files: checked before the work starts, written atomically, never thrown away.

Every file the package writes (head sets, evaluation reports, tables, batch results) goes through here, so all
of them share three guarantees: a bad output path fails *before* a long run rather than after it
(:func:`check_output_path`); an interrupted write leaves either the old file or the new one, never half of one
(:func:`atomic_path`); and the written file gets the usual permissions (``0666`` minus the umask), not the
``0600`` of a temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputPathError


def check_output_path(path: str | os.PathLike[str], *, option: str = "--output") -> Path:
    """Fail now, with a typed error, if ``path`` cannot become a file; return it as a :class:`Path`.

    Checked: the path is not an existing directory, its nearest existing ancestor is a directory and that
    directory is writable (missing folders are created at write time). Remote prefixes (``s3://``) are not
    checked here.

    Raises:
        OutputPathError: the path can never be written as a file; the message names ``option``.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"{option} {os.fspath(path)!r} is a directory; give a file name")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{option} {os.fspath(path)!r}: {os.fspath(ancestor)!r} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {os.fspath(path)!r}: no permission to write in {os.fspath(ancestor)!r}")
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on any error delete it.

    The temporary file lives in the target's folder (so the rename is atomic on one file system) and gets the
    permissions an ordinary ``open(path, "w")`` would give before it is renamed into place.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The target's suffix is kept: writers such as matplotlib pick the format from it.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix or ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def rescue_text(name: str, text: str) -> Path:
    """Keep a finished result whose own path failed at write time: write it to the temp folder, return where.

    Used only after :func:`check_output_path` passed and the write still failed (the disk filled, the folder
    vanished): a long run's result is never thrown away.
    """
    fd, tmp = tempfile.mkstemp(prefix=f"qrhead-rescued-{Path(name).stem}-", suffix=Path(name).suffix or ".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(tmp)
