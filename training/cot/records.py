"""Input of the CoT annotation pipeline: VQA records in Video-R1's training format.

A record reads ``{problem_id, problem, data_type (image|video|frame), problem_type, options,
solution ("<answer>..</answer>"), path, data_source}`` (Video-R1-260k.json and friends). Files
are a JSON list or JSON Lines. Every field of a record is kept and written back into the
output records, so nothing of the source is lost.

Two kinds of bad input, treated differently:

- a file that cannot be read, a record that is not an object, without a usable
  ``problem_id``, or a ``problem_id`` used twice: :class:`AnnotateInputError` before any work
  starts (resuming is keyed on ``problem_id``, so it must name one record);
- a record with an unusable field (unknown problem type, no ``<answer>`` in the solution, …)
  or a media path that leaves the media root: that item fails with the reason recorded, the
  run goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2r_eval.benchmarks.formats.paths import frames_folder_or_video, locate_media
from p2r_eval.core.answer_types import TRAINING_ANSWER_TYPES
from p2r_eval.core.items import Item
from p2r_eval.core.jsonio import NotUTF8Error, jsonl_lines, parse_json, utf8_text
from p2r_eval.core.scoring import extract_answer
from p2r_eval.core.template import parse

DATA_TYPES = ("image", "video", "frame")
"""``frame``: a folder of frames, as Video-R1 names some MVBench clips (see
:func:`p2r_eval.benchmarks.formats.paths.frames_folder_or_video`)."""
ANNOTATE_TASK = "annotate"
"""The task name of every teacher request (a replay file answers ``("annotate", problem_id)``)."""


class AnnotateInputError(ValueError):
    """The input file cannot be used; the message names the file and the record."""


class UnsafeMediaPathError(ValueError):
    """A record's media path would leave the media root (see :func:`resolve_media_path`)."""


@dataclass(frozen=True)
class VQARecord:
    """One input record: its id (``problem_id`` as a string), its place in the input file and
    the record itself, untouched."""

    id: str
    position: int
    fields: dict[str, Any]

    @property
    def problem_type(self) -> str:
        return str(self.fields.get("problem_type"))


def load_vqa_records(path: Path) -> list[VQARecord]:
    """All records of a JSON list or JSON Lines file, in file order."""
    path = Path(path)
    try:
        text = utf8_text(path.read_bytes())
    except (OSError, NotUTF8Error) as error:
        raise AnnotateInputError(f"cannot read input file {path}: {error}") from None
    raw_records = _json_records(path, text)
    records: list[VQARecord] = []
    first_seen: dict[str, str] = {}
    for position, (where, raw) in enumerate(raw_records):
        record_id = _record_id(path, where, raw)
        if record_id in first_seen:
            raise AnnotateInputError(
                f"{path}, {where}: problem_id {record_id!r} was already used by "
                f"{first_seen[record_id]}; each record needs its own problem_id"
            )
        first_seen[record_id] = where
        records.append(VQARecord(record_id, position, raw))
    return records


def _json_records(path: Path, text: str) -> list[tuple[str, Any]]:
    """``(where, record)`` pairs; ``where`` names the line (JSONL) or index (JSON list)."""
    if text.lstrip().startswith("["):
        try:
            data = parse_json(text)
        except json.JSONDecodeError as error:
            raise AnnotateInputError(f"{path}: not valid JSON ({error})") from None
        return [(f"record {index}", record) for index, record in enumerate(data)]
    records = []
    for number, line in enumerate(jsonl_lines(text), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", parse_json(line)))
        except json.JSONDecodeError as error:
            raise AnnotateInputError(f"{path}, line {number}: not valid JSON ({error})") from None
    return records


def _record_id(path: Path, where: str, raw: Any) -> str:
    if not isinstance(raw, dict):
        raise AnnotateInputError(f"{path}, {where}: expected a JSON object, got "
                                 f"{type(raw).__name__}")
    problem_id = raw.get("problem_id")
    if isinstance(problem_id, bool) or not isinstance(problem_id, (str, int)) or (
        isinstance(problem_id, str) and not problem_id.strip()
    ):
        raise AnnotateInputError(f"{path}, {where}: problem_id must be a non-empty string or an "
                                 f"integer, got {problem_id!r}")
    return str(problem_id)


def record_problem(fields: dict[str, Any]) -> str | None:
    """Why this record cannot be annotated, or ``None`` when it can."""
    for name in ("problem", "solution", "path"):
        if not isinstance(fields.get(name), str) or not fields[name].strip():
            return f"field {name!r} must be a non-empty string"
    if fields.get("data_type") not in DATA_TYPES:
        return f"data_type {fields.get('data_type')!r} is not one of {', '.join(DATA_TYPES)}"
    if fields.get("problem_type") not in TRAINING_ANSWER_TYPES:
        choices = ", ".join(TRAINING_ANSWER_TYPES)
        return f"problem_type {fields.get('problem_type')!r} is not one of {choices}"
    options = fields.get("options")
    if options is not None and not (
        isinstance(options, list) and all(isinstance(o, str) for o in options)
    ):
        return "options must be a list of strings or null"
    if fields["problem_type"] == "multiple choice" and not options:
        return "a multiple choice record needs options"
    answer = parse(fields["solution"]).answer
    if answer is None or not answer.strip():
        return "solution must hold a non-empty <answer>...</answer>"
    return None


def resolve_media_path(media_root: Path, relative: str) -> Path:
    """``relative`` inside ``media_root``; :class:`UnsafeMediaPathError` when it is empty, a URL,
    absolute, holds a ``..`` part or resolves (through links) outside the root: the same rule
    as evaluation's (:func:`p2r_eval.benchmarks.formats.paths.locate_media`). A path that does not
    exist
    is returned: reading it reports the missing file."""
    location = locate_media(relative, Path(media_root), Path(media_root))
    if location.path is None:
        raise UnsafeMediaPathError(f"{location.error} (media paths must stay inside --media-root)")
    return location.path


def record_item(record: VQARecord, media: Path, frame_folder_fps: float | None = None) -> Item:
    """The :class:`Item` of a valid record (see :func:`record_problem`), media resolved; a
    frame folder's frames were taken at ``frame_folder_fps`` (``None``: unknown, and reading
    the folder fails the item saying so)."""
    fields = record.fields
    media_type = fields["data_type"]
    if media_type == "frame":
        media, media_type = frames_folder_or_video(media)
    return Item(
        task=ANNOTATE_TASK,
        id=record.id,
        question=fields["problem"],
        options=tuple(fields.get("options") or ()),
        answer=extract_answer(fields["solution"]),
        answer_type=fields["problem_type"],
        media=media,
        media_type=media_type,
        solution=fields["solution"],
        meta={"data_source": fields.get("data_source")},
        frame_folder_fps=frame_folder_fps if media_type == "frames" else None,
    )
