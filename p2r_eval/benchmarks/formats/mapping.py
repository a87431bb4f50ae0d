"""Apply a task YAML's record mapping: records in, :class:`~p2r_eval.core.items.Item` out.

A mapping gives, for each item field, where its value comes from::

    id: problem_id                              # a record field (required)
    solution: {field: solution, default: null}  # an optional field
    media_type: {const: video}                  # a constant
    options: {fn: option_list, field: options}  # a named transform with its arguments

``meta`` maps each category name to such a value. The named transforms are the shared ones of
:mod:`p2r_eval.benchmarks.formats.transforms` plus the benchmark module's own; the caller
passes them all as ``transforms``. Item fields: ``id``, ``question``,
``options``, ``answer``, ``answer_type`` (required), ``media``, ``media_type``,
``solution``, ``meta`` (optional).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2r_eval.benchmarks.formats.errors import AnnotationError, RecordError
from p2r_eval.benchmarks.formats.paths import frames_folder_or_video, locate_media
from p2r_eval.benchmarks.formats.transforms import TRANSFORMS, Record, required
from p2r_eval.core.items import ANSWER_TYPES, MEDIA_TYPES, Item

Transforms = Mapping[str, Callable[..., Any]]
REQUIRED_FIELDS = ("id", "question", "options", "answer", "answer_type")
OPTIONAL_FIELDS = ("media", "media_type", "solution", "meta")


@dataclass(frozen=True)
class MediaBase:
    """Media paths are joined to ``folder`` and must stay inside ``data_root``; the source's
    frame folders hold frames taken at ``frame_folder_fps`` (``None``: it gives no rate)."""

    folder: Path
    data_root: Path
    frame_folder_fps: float | None = None


def check_mapping(mapping: Mapping[str, Any], where: str,
                  transforms: Transforms = TRANSFORMS) -> None:
    """Reject a mapping with missing or unknown fields or unknown transforms (a YAML error)."""
    missing = [f for f in REQUIRED_FIELDS if f not in mapping]
    unknown = [f for f in mapping if f not in REQUIRED_FIELDS + OPTIONAL_FIELDS]
    if missing or unknown:
        raise ValueError(f"{where}: record mapping lacks {missing} or has unknown {unknown}")
    specs = [v for k, v in mapping.items() if k != "meta"] + list(mapping.get("meta", {}).values())
    for spec in specs:
        if isinstance(spec, dict) and "fn" in spec and spec["fn"] not in transforms:
            raise ValueError(f"{where}: unknown transform {spec['fn']!r}; "
                             f"known: {', '.join(sorted(transforms))}")


def value_of(spec: Any, record: Record, transforms: Transforms) -> Any:
    """One mapping entry evaluated on one record (see module doc)."""
    if isinstance(spec, str):
        return required(record, spec)
    if "const" in spec:
        return spec["const"]
    if "fn" in spec:
        arguments = {key: value for key, value in spec.items() if key != "fn"}
        return transforms[spec["fn"]](record, **arguments)
    return record.get(spec["field"], spec.get("default"))


def field_name(spec: Any, item_field: str) -> str:
    """The record field an error should name for this mapping entry."""
    if isinstance(spec, str):
        return spec
    return spec.get("field", item_field)


def build_item(task: str, record: Record, mapping: Mapping[str, Any], base: MediaBase,
               transforms: Transforms) -> Item:
    """One record to one item; raises :class:`RecordError` for a bad field."""
    values = {}
    for name in REQUIRED_FIELDS + ("media", "media_type", "solution"):
        if name in mapping:
            values[name] = value_of(mapping[name], record, transforms)
    meta = {name: value_of(spec, record, transforms)
            for name, spec in mapping.get("meta", {}).items()}
    item_id = _identifier(values["id"], field_name(mapping["id"], "id"))
    _check_text(values, "question", mapping)
    _check_options(values["options"], field_name(mapping["options"], "options"))
    _check_text(values, "answer", mapping)
    _check_choice(values, "answer_type", ANSWER_TYPES, mapping)
    media_type = values.get("media_type", "video" if "media" in mapping else "none")
    _check_choice({"media_type": media_type}, "media_type", MEDIA_TYPES, mapping)
    media, media_type = _media(values.get("media"), media_type, base, meta)
    return Item(
        task=task,
        id=item_id,
        question=values["question"],
        options=tuple(values["options"]),
        answer=values["answer"],
        answer_type=values["answer_type"],
        media=media,
        media_type=media_type,
        solution=values.get("solution") or "",
        meta=meta,
        frame_folder_fps=base.frame_folder_fps if media_type == "frames" else None,
    )


def _identifier(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise RecordError(field, f"expected a non-empty string or integer id, got {value!r}")
    return str(value)


def _check_text(values: dict[str, Any], name: str, mapping: Mapping[str, Any]) -> None:
    if not isinstance(values[name], str):
        raise RecordError(field_name(mapping[name], name),
                          f"expected a string, got {type(values[name]).__name__}")


def _check_options(options: Any, field: str) -> None:
    if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
        raise RecordError(field, f"expected a list of option strings, got {options!r:.80}")


def _check_choice(values: dict[str, Any], name: str, allowed: Iterable[str],
                  mapping: Mapping[str, Any]) -> None:
    if values[name] not in allowed:
        raise RecordError(field_name(mapping.get(name, name), name),
                          f"unknown {name.replace('_', ' ')} {values[name]!r}; "
                          f"expected one of {', '.join(allowed)}")


def _media(relative: Any, media_type: str, base: MediaBase,
           meta: dict[str, Any]) -> tuple[Path | None, str]:
    """Resolve the media path; an unsafe one leaves ``None`` and ``meta["media_error"]``."""
    if media_type == "none" or relative is None:
        return None, media_type
    if not isinstance(relative, str):
        raise RecordError("media", f"expected a path string, got {type(relative).__name__}")
    location = locate_media(relative, base.folder, base.data_root)
    if location.path is None:
        meta["media_error"] = location.error
        return None, media_type
    if media_type == "frames":
        return frames_folder_or_video(location.path)
    return location.path, media_type


def build_items(task: str, records: list[dict[str, Any]], mapping: Mapping[str, Any],
                base: MediaBase, transforms: Transforms) -> list[Item]:
    """Every record to an item, in order; the first bad record or duplicate id raises
    :class:`AnnotationError` naming the file, the record and the field."""
    items: list[Item] = []
    first_seen: dict[str, int] = {}
    for record in records:
        try:
            item = build_item(task, record, mapping, base, transforms)
        except RecordError as error:
            raise AnnotationError(record["_source"], error.problem, record=_record_name(record),
                                  field=error.field) from error
        if item.id in first_seen:
            raise AnnotationError(record["_source"], f"duplicate id {item.id!r} (first at record "
                                  f"#{first_seen[item.id]})", record=_record_name(record),
                                  field=field_name(mapping["id"], "id"))
        first_seen[item.id] = record["_index"]
        items.append(item)
    return items


def _record_name(record: Record) -> str:
    for key in ("problem_id", "id", "question_id"):
        if key in record and isinstance(record[key], (str, int)):
            return f"#{record['_index']} ({key} {record[key]})"
    return f"#{record['_index']}"
