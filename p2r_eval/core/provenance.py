"""What produced a result: package version, git commit, file hashes."""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout p2r runs from, with ``+dirty`` for local changes; None
    when p2r is not installed from a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(PACKAGE_ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PACKAGE_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def package_info() -> dict[str, Any]:
    try:
        version = metadata.version("p2r")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"name": "p2r", "version": version, "git_commit": git_commit()}
