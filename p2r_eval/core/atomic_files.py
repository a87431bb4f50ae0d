"""Replacing a file so that a reader sees the old or the new one, never part of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to a uniquely named temporary file beside ``path`` and rename it over
    ``path`` (safe when several processes write the same path). ``durable``: fsync before
    the rename, so a power loss cannot leave an empty file under the final name; files that
    are only a regenerable view (thumbnails) may skip it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}.",
                                          suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    """:func:`write_atomically` for UTF-8 text."""
    write_atomically(path, text.encode("utf-8"))
