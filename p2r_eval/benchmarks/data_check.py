"""``p2r-eval check-data``: what a data root holds for each benchmark, before any inference.

Per benchmark: the format and annotation files found, the number of records (and the
number the benchmark should have), the media files that are missing, those that exist but
cannot be read (a video with no readable video stream, a frame folder without images), and
the records whose paths were refused (they leave the data root, hold a NUL character, loop).
Paths and names come from the data, so the text report shows their control characters as
``\\uXXXX`` escapes: one entry is always one line. A bad annotation file is reported for its
benchmark; the others are still checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from p2r_eval.benchmarks.registry import (
    AnnotationError,
    demo_data_root,
    load_task,
    task_spec,
)
from p2r_eval.core.items import Item
from p2r_eval.core.untrusted import visible_controls

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
SHOWN_PER_LIST = 5


@dataclass(frozen=True)
class TaskDataReport:
    """What ``check-data`` found for one benchmark (media paths relative to the data root)."""

    task: str
    source_format: str | None = None
    data_files: dict[str, str] = field(default_factory=dict)
    records: int = 0
    expected_records: int | None = None
    media_files: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    escaping: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not (self.missing or self.unreadable or self.escaping)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def check_data(task_names: Sequence[str], data_root: Path | None, *, probe: bool = True
               ) -> list[TaskDataReport]:
    """One report per task. ``probe`` opens every media file found (slower, catches corrupt
    files); without it only existence is checked. ``data_root=None``: the demo suite."""
    root = Path(data_root).expanduser() if data_root is not None else demo_data_root()
    return [check_task(name, root, probe=probe) for name in task_names]


def check_task(name: str, root: Path, *, probe: bool = True) -> TaskDataReport:
    try:
        loaded = load_task(name, root)
    except AnnotationError as error:
        return TaskDataReport(task=name, error=str(error))
    spec_source = task_spec(name).sources[loaded.source_format]
    missing, unreadable, escaping = [], [], []
    media = _unique_media(loaded.items)
    for item in loaded.items:
        if item.meta.get("media_error"):
            escaping.append(f"{item.id}: {item.meta['media_error']}")
    for path, media_type in media.items():
        problem = media_problem(path, media_type, probe=probe)
        shown = _relative(path, root)
        if problem == "missing":
            missing.append(shown)
        elif problem is not None:
            unreadable.append(f"{shown}: {problem}")
    return TaskDataReport(
        task=name,
        source_format=loaded.source_format,
        data_files=loaded.data_files,
        records=len(loaded.items),
        expected_records=spec_source.records,
        media_files=len(media),
        missing=missing,
        unreadable=unreadable,
        escaping=escaping,
    )


def _unique_media(items: Sequence[Item]) -> dict[Path, str]:
    return {item.media: item.media_type for item in items if item.media is not None}


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def media_problem(path: Path, media_type: str, *, probe: bool = True) -> str | None:
    """``"missing"``, another reason the file is unusable, or ``None`` when it is fine."""
    try:
        return _media_problem(path, media_type, probe=probe)
    except OSError as error:  # a name too long, a folder that cannot be listed, ...
        return f"unreadable: {error.strerror or error}"


def _media_problem(path: Path, media_type: str, *, probe: bool) -> str | None:
    if media_type == "frames":
        if not path.is_dir():
            return "missing"
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
            return "frame folder holds no images"
        return None
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a file"
    if path.stat().st_size == 0:
        return "empty file"
    if not probe:
        return None
    return image_problem(path) if media_type == "image" else video_problem(path)


def video_problem(path: Path) -> str | None:
    """Why PyAV cannot read a video stream from ``path`` (``None`` when it can)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream"
            stream = container.streams.video[0]
            for _ in container.decode(stream):
                return None
            return "no decodable frame"
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as error:
        return f"unreadable: {error}"


def image_problem(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError) as error:
        return f"unreadable image: {error}"
    return None


def render_report(reports: Sequence[TaskDataReport], data_root: Path | None = None) -> str:
    """The reports as plain text, one block per benchmark."""
    shown_root = visible_controls(str(data_root)) if data_root is not None else "demo suite"
    lines = [f"data root: {shown_root}"]
    for report in reports:
        lines.append("")
        if report.error is not None:
            lines.append(f"{report.task}: ERROR {visible_controls(report.error)}")
            continue
        expected = (f" (expected {report.expected_records:,})"
                    if report.expected_records not in (None, report.records) else "")
        lines.append(f"{report.task}: {report.source_format} format, {report.records:,} records"
                     f"{expected}, {report.media_files:,} media files -> "
                     f"{'OK' if report.ok else 'PROBLEMS'}")
        for label in report.data_files:
            lines.append(f"  annotations: {visible_controls(label)}")
        for title, entries in (("missing", report.missing), ("unreadable", report.unreadable),
                               ("path refused", report.escaping)):
            if entries:
                lines.append(f"  {title}: {len(entries):,}")
                lines.extend(f"    {visible_controls(entry)}"
                             for entry in entries[:SHOWN_PER_LIST])
                if len(entries) > SHOWN_PER_LIST:
                    lines.append(f"    ... and {len(entries) - SHOWN_PER_LIST:,} more")
    return "\n".join(lines)
