"""The shared named transforms a task YAML may use to map a record field to an item field.

Each takes the record and the arguments written next to its name in the YAML
(``{fn: option_list, field: options}``) and returns the value, or raises
:class:`~p2r_eval.benchmarks.formats.errors.RecordError` naming the field at fault. The shared
ones are listed in :data:`TRANSFORMS`; a transform only one benchmark needs lives in that
benchmark's module (``Benchmark.transforms``). A YAML naming a transform that is in neither is
rejected when the task loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from p2r_eval.benchmarks.formats.errors import RecordError
from p2r_eval.core.template import parse

Record = Mapping[str, Any]

def required(record: Record, field: str) -> Any:
    if field not in record:
        raise RecordError(field, "missing")
    return record[field]


def text(record: Record, field: str) -> str:
    """The field as a string; numbers are written as the file writes them (``str``)."""
    value = required(record, field)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordError(field, f"expected a string, got {type(value).__name__}")
    return value if isinstance(value, str) else str(value)


def string_list(record: Record, field: str) -> list[str]:
    value = required(record, field)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RecordError(field, f"expected a list of strings, got {value!r:.80}")
    return list(value)


# -- field transforms named in the YAML files --------------------------------------------


def template(record: Record, template: str) -> str:
    """``template`` filled with the record's fields (``"{dataset}/{scene_name}.mp4"``)."""
    try:
        return template.format_map(record)
    except KeyError as error:
        raise RecordError(str(error.args[0]), "missing") from error


def option_list(record: Record, field: str) -> tuple[str, ...]:
    """Options as the record writes them (``"A. left"``); ``null`` means no options."""
    if required(record, field) is None:
        return ()
    return tuple(string_list(record, field))


def lettered_options(record: Record, field: str) -> tuple[str, ...]:
    """Bare option texts labelled ``"A. text"``; options that already carry their letters
    (``"A. text"``) are kept as they are."""
    options = string_list(record, field)
    labelled = [(chr(ord("A") + i), option) for i, option in enumerate(options)]
    if all(option.startswith(f"{letter}.") for letter, option in labelled):
        return tuple(options)
    return tuple(f"{letter}. {option}" for letter, option in labelled)


def lettered_choices(record: Record, field: str) -> tuple[str, ...]:
    """``{"A": "text", ...}`` to ``("A. text", ...)``; empty choices (open questions) dropped."""
    choices = required(record, field)
    if not isinstance(choices, dict) or not all(isinstance(v, str) for v in choices.values()):
        raise RecordError(field, f"expected an object of letter -> text, got {choices!r:.80}")
    return tuple(f"{letter}. {value}" for letter, value in sorted(choices.items()) if value)


def answer_tag(record: Record, field: str) -> str:
    """The content of the ``<answer>…</answer>`` tag (Video-R1's ``solution``), stripped."""
    answer = parse(text(record, field)).answer
    if answer is None:
        raise RecordError(field, "expected '<answer>…</answer>'")
    return answer.strip()


def choose_by_membership(
    record: Record, field: str, values: Sequence[str], inside: str, outside: str
) -> str:
    """``inside`` when the field's value is one of ``values``, else ``outside``."""
    return inside if text(record, field) in values else outside


def choose_by_flag(record: Record, field: str, if_true: str, if_false: str) -> str:
    value = required(record, field)
    if not isinstance(value, bool):
        raise RecordError(field, f"expected true or false, got {value!r}")
    return if_true if value else if_false


def choose_by_presence(record: Record, field: str, if_present: str, if_absent: str) -> str:
    """``if_present`` when the field holds a non-empty list, else ``if_absent``."""
    return if_present if record.get(field) else if_absent


def integer(record: Record, field: str) -> int:
    value = required(record, field)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(field, f"expected an integer, got {value!r}")
    return value


def id_range(record: Record, field: str, ranges: Mapping[str, Sequence[int]]) -> str:
    """The name of the inclusive ``[first, last]`` range holding the field's number."""
    number = integer(record, field)
    for name, (first, last) in ranges.items():
        if first <= number <= last:
            return name
    raise RecordError(field, f"{number} lies in none of the ranges {dict(ranges)}")


def id_block(record: Record, field: str, size: int, names: Sequence[str], first: int = 1) -> str:
    """``names[(number - first) // size]``: MVBench's 20 tasks in blocks of 200 ids."""
    block = (integer(record, field) - first) // size
    if not 0 <= block < len(names):
        raise RecordError(field, f"{record[field]} lies outside the {len(names)} blocks of {size}")
    return names[block]


def path_part(record: Record, field: str, index: int) -> str:
    """One component of a path field (``-2``: the folder holding the file)."""
    parts = PurePosixPath(text(record, field)).parts
    try:
        return parts[index]
    except IndexError as error:
        raise RecordError(field, f"path has no part {index}: {record[field]}") from error






def prefixed_path(record: Record, key_field: str, prefixes: Mapping[str, str], field: str) -> str:
    """``prefixes[record[key_field]] + "/" + record[field]`` (MVBench's per-task folders)."""
    key = text(record, key_field)
    if key not in prefixes:
        raise RecordError(key_field, f"{key!r} has no media folder; known: {sorted(prefixes)}")
    return f"{prefixes[key]}/{text(record, field)}"




def duration_bucket(record: Record, field: str, buckets: Sequence[Sequence[Any]]) -> str:
    """The label of the first ``[upper, label]`` bucket with ``value <= upper`` (``upper``
    null: no bound)."""
    value = required(record, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(field, f"expected a number of seconds, got {value!r}")
    for upper, label in buckets:
        if upper is None or value <= upper:
            return label
    raise RecordError(field, f"{value} is above every bucket")












def video_r1_media_type(record: Record, field: str) -> str:
    """Video-R1's ``data_type`` to the item's media type (``frame``: a frame folder)."""
    kinds = {"video": "video", "frame": "frames", "image": "image"}
    value = text(record, field)
    if value not in kinds:
        raise RecordError(field, f"unknown data type {value!r}; expected one of {sorted(kinds)}")
    return kinds[value]


TRANSFORMS: dict[str, Callable[..., Any]] = {
    "template": template,
    "option_list": option_list,
    "lettered_options": lettered_options,
    "lettered_choices": lettered_choices,
    "answer_tag": answer_tag,
    "choose_by_membership": choose_by_membership,
    "choose_by_flag": choose_by_flag,
    "choose_by_presence": choose_by_presence,
    "id_range": id_range,
    "id_block": id_block,
    "path_part": path_part,
    "prefixed_path": prefixed_path,
    "duration_bucket": duration_bucket,
    "video_r1_media_type": video_r1_media_type,
}
