"""Where a record's media lives, and refusing paths that leave the data root.

A record names its video relative to a base folder (the data root for Video-R1's files, the
benchmark's folder for the authors' releases). A path that is absolute, is a URL, contains a
``..`` part, or resolves (through symlinks) outside the data root is refused: the item keeps
``media=None`` and the reason in ``meta["media_error"]``, the run records an error for that
item, and ``check-data`` lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mkv", ".avi", ".mov", ".MP4"})


@dataclass(frozen=True)
class MediaLocation:
    """A resolved media path, or the reason it was refused."""

    path: Path | None
    error: str | None = None


def unsafe_reason(relative: str) -> str | None:
    """Why ``relative`` may not be joined to a base folder, or ``None`` when it may."""
    if not relative.strip():
        return "empty media path"
    if "\x00" in relative:
        return f"media path holds a NUL character: {relative!r}"
    if "://" in relative:
        return f"media path is a URL, not a local path: {relative}"
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).is_absolute():
        return f"absolute media path: {relative}"
    if ".." in PurePosixPath(relative.replace("\\", "/")).parts:
        return f"media path contains '..': {relative}"
    return None


def locate_media(relative: str, base: Path, data_root: Path) -> MediaLocation:
    """``base / relative`` when it is safe and stays inside ``data_root`` (see module doc)."""
    reason = unsafe_reason(relative)
    if reason is not None:
        return MediaLocation(None, reason)
    path = base.joinpath(*PurePosixPath(relative).parts)
    try:
        resolved, root = path.resolve(), data_root.resolve()
    except RuntimeError:  # pathlib's report of a symlink loop
        return MediaLocation(None, f"media path is a symlink loop: {relative}")
    except OSError as error:
        return MediaLocation(None, f"media path cannot be resolved ({error.strerror}): {relative}")
    if not resolved.is_relative_to(root):
        return MediaLocation(None, f"path escapes the data root: {relative} -> {resolved}")
    return MediaLocation(path)


def is_file(path: Path) -> bool:
    """``path.is_file()``, False for a path the system refuses to look up (a name too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def frames_folder_or_video(path: Path) -> tuple[Path, str]:
    """A frame-folder record whose path ends in a video suffix (Video-R1 names MVBench's
    episodic_reasoning folders ``frames_fps3_hq/<clip>.mp4``): the video when that file
    exists, else the folder ``<clip>/``."""
    if path.suffix in VIDEO_SUFFIXES and not is_file(path):
        return path.with_suffix(""), "frames"
    if path.suffix in VIDEO_SUFFIXES:
        return path, "video"
    return path, "frames"
