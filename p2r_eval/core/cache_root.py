"""Where p2r keeps what it builds once and reuses: the demo model, the demo suite, judge replies."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock


def cache_root() -> Path:
    """``$P2R_CACHE`` if set, else ``~/.cache/p2r``."""
    return Path(os.environ.get("P2R_CACHE") or Path.home() / ".cache" / "p2r").expanduser()


def build_once(target: Path, marker: str, build: Callable[[Path], object]) -> Path:
    """``target``, made by ``build(folder)`` on first use and complete once ``marker`` (a
    file ``build`` writes last) is in it. Safe when several processes ask at once: one
    builds in a temporary sibling under a file lock and renames it into place; the others
    wait and reuse it."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f"{target.name}.lock")):
        if (target / marker).is_file():
            return target
        staging = target.parent / f"{target.name}.building-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        build(staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return target
