"""The unit of evaluation: one benchmark question, independent of its source format."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2r_eval.core.answer_types import ANSWER_TYPES

MEDIA_TYPES = ("video", "frames", "image", "none")
_OPTION_LABEL = re.compile(r"^\s*\(?([A-Z])\s*[.):]\s?")


@dataclass(frozen=True)
class Item:
    """One question of a benchmark.

    ``question`` is the bare question text (options not included); ``options`` the option
    strings as the benchmark writes them (e.g. ``"A. left"``); ``answer`` the reference answer
    (a letter for multiple choice). ``solution`` is the reference in Video-R1's
    ``<answer>…</answer>`` form, which the Video-R1 protocol extracts like a model output.
    ``media`` is the resolved path of the video (or frame folder, or image), ``None`` for
    text-only items. ``meta`` holds the category fields used for breakdowns.
    ``frame_folder_fps`` is the rate a frame folder's frames were taken at (a fact of the
    benchmark's data, from its task YAML); ``None`` for every other media type.
    """

    task: str
    id: str
    question: str
    options: tuple[str, ...]
    answer: str
    answer_type: str
    media: Path | None
    media_type: str = "video"
    solution: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    frame_folder_fps: float | None = None

    def __post_init__(self) -> None:
        if self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"{self.task}/{self.id}: unknown answer type {self.answer_type!r}")
        if self.media_type not in MEDIA_TYPES:
            raise ValueError(f"{self.task}/{self.id}: unknown media type {self.media_type!r}")
        if self.frame_folder_fps is not None and not self.frame_folder_fps > 0:
            raise ValueError(f"{self.task}/{self.id}: frame_folder_fps must be positive, got "
                             f"{self.frame_folder_fps!r}")
        if not self.solution:
            object.__setattr__(self, "solution", f"<answer>{self.answer}</answer>")


def split_option(option: str) -> tuple[str, str] | None:
    """An option string's letter and the text after its label: ``"B. red car"``, ``"(B) red
    car"``, ``"B) red car"`` and ``"B: red car"`` give ``("B", "red car")``; ``None`` when the
    string starts with no letter label. p2r's one rule from option strings to letters."""
    match = _OPTION_LABEL.match(option)
    return (match.group(1), option[match.end():]) if match else None


def option_letter(option: str) -> str | None:
    """The letter an option string starts with (:func:`split_option`), ``None`` if none."""
    split = split_option(option)
    return split[0] if split else None


def option_text(options: Sequence[str], letter: str) -> str:
    """The text of the option labelled ``letter``, without its label (``""`` if none is)."""
    for option in options:
        split = split_option(option)
        if split and split[0] == letter:
            return split[1]
    return ""


def item_to_row(item: Item) -> dict[str, Any]:
    """An item as a flat row of JSON-able plain values (the media path as a string, ``meta``
    as a JSON string): a dataset row for training, a document for lmms-eval."""
    return {
        "task": item.task,
        "id": item.id,
        "question": item.question,
        "options": list(item.options),
        "answer": item.answer,
        "answer_type": item.answer_type,
        "media": None if item.media is None else str(item.media),
        "media_type": item.media_type,
        "solution": item.solution,
        "meta": json.dumps(item.meta, default=str, sort_keys=True),
        "frame_folder_fps": item.frame_folder_fps,
    }


def item_from_row(row: dict[str, Any]) -> Item:
    """The inverse of :func:`item_to_row`."""
    return Item(
        task=row["task"],
        id=row["id"],
        question=row["question"],
        options=tuple(row["options"] or ()),
        answer=row["answer"],
        answer_type=row["answer_type"],
        media=None if row["media"] is None else Path(row["media"]),
        media_type=row["media_type"],
        solution=row["solution"],
        meta=json.loads(row["meta"]),
        frame_folder_fps=row["frame_folder_fps"],
    )


def item_sha256(item: Item, media_root: Path) -> str:
    """sha256 of what an item asks and expects: its question, options, answer, media (relative
    to the task's media folder, so a copied data root keeps the hash) and categories."""
    media = None
    if item.media is not None:
        try:
            media = item.media.relative_to(media_root).as_posix()
        except ValueError:
            media = item.media.as_posix()
    content = {"task": item.task, "id": item.id, "question": item.question,
               "options": list(item.options), "answer": item.answer, "solution": item.solution,
               "answer_type": item.answer_type, "media": media, "media_type": item.media_type,
               "meta": item.meta}
    text = json.dumps(content, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
