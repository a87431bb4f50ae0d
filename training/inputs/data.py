"""Training records: VideoP2R-CoT (SFT) and Video-R1-style RL records, read into datasets.

A record has Video-R1's training fields (``problem_id, problem, data_type, problem_type,
options, solution, path, data_source``); VideoP2R-CoT records add ``observation``,
``process``, ``output`` and ``answer``. Each record maps to a :class:`p2r_eval.core.items.Item`
(:func:`record_to_item`), so training prompts are built by :mod:`p2r_eval.core.prompts` exactly as
evaluation builds them, and rewards score against the same fields.

Datasets hold media *paths*, never frames: frames are decoded at collate time
(:mod:`p2r_train.inputs.collate`), so a dataset of 160k videos stays a few megabytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from p2r_eval.core.answer_types import TRAINING_ANSWER_TYPES
from p2r_eval.core.items import Item, item_to_row
from p2r_eval.core.jsonio import jsonl_lines
from p2r_eval.core.scoring import extract_answer
from p2r_eval.core.template import TAGS, parse

REQUIRED_FIELDS = ("problem_id", "problem", "data_type", "problem_type", "solution", "path")
DATA_TYPES = {"video": "video", "image": "image"}


class TrainingDataError(ValueError):
    """A training file or record that cannot be used; the message names the file and record."""


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``.json`` file (a list of objects) or a ``.jsonl`` file (one a line)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such data file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in jsonl_lines(text) if line.strip()]
        else:
            records = json.loads(text)
    except json.JSONDecodeError as error:
        raise TrainingDataError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise TrainingDataError(f"{path}: expected a list of record objects")
    if not records:
        raise TrainingDataError(f"{path}: holds no records")
    return records


def _where(record: dict[str, Any], index: int) -> str:
    return f"record {index} (problem_id {record.get('problem_id', '?')!r})"


def record_to_item(record: dict[str, Any], media_root: Path, *, index: int = 0) -> Item:
    """The :class:`Item` a record stands for; its media path resolved under ``media_root``."""
    missing = [name for name in REQUIRED_FIELDS if record.get(name) in (None, "")]
    if missing:
        raise TrainingDataError(f"{_where(record, index)}: missing fields {missing}")
    data_type = record["data_type"]
    if data_type not in DATA_TYPES:
        raise TrainingDataError(
            f"{_where(record, index)}: data_type {data_type!r} is not one of {sorted(DATA_TYPES)}"
        )
    answer_type = record["problem_type"]
    if answer_type not in TRAINING_ANSWER_TYPES:
        raise TrainingDataError(
            f"{_where(record, index)}: problem_type {answer_type!r} is not one of "
            f"{sorted(TRAINING_ANSWER_TYPES)}"
        )
    options = record.get("options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise TrainingDataError(f"{_where(record, index)}: options must be a list of strings")
    return Item(
        task=str(record.get("data_source") or "train"),
        id=str(record["problem_id"]),
        question=str(record["problem"]),
        options=tuple(options),
        answer=extract_answer(str(record["solution"])),
        answer_type=answer_type,
        media=media_root / str(record["path"]),
        media_type=DATA_TYPES[data_type],
        solution=str(record["solution"]),
    )


def _segment_text(value: Any, tag: str) -> str:
    """A record field that may or may not carry its own tags (Video-R1-CoT's ``process`` is
    ``<think>…</think>``): the segment's content when tagged, else the text itself."""
    text = str(value or "")
    content = parse(text).contents.get(tag)
    return (content if content is not None else text).strip()


def process_aware_target(record: dict[str, Any], *, index: int = 0) -> str:
    """The SFT target of a VideoP2R-CoT record, in the process-aware template.

    ``output`` is used as it stands when it is a well-formed observation/think/answer text;
    otherwise the target is composed from ``observation``, ``process`` and ``answer`` (or the
    answer of ``solution``), one block a line.
    """
    output = record.get("output")
    if isinstance(output, str) and parse(output).well_formed(TAGS):
        return output.strip()
    observation = _segment_text(record.get("observation"), "observation")
    reasoning = _segment_text(record.get("process"), "think")
    answer = _segment_text(record.get("answer"), "answer") or extract_answer(
        str(record.get("solution") or "")
    )
    if not observation or not reasoning or not answer:
        raise TrainingDataError(
            f"{_where(record, index)}: an SFT record needs a well-formed 'output', or "
            "non-empty 'observation', 'process' and 'answer'"
        )
    return (
        f"<observation>{observation}</observation>\n<think>{reasoning}</think>\n"
        f"<answer>{answer}</answer>"
    )


def think_answer_target(record: dict[str, Any], *, index: int = 0) -> str:
    """The process-agnostic SFT target (Video-R1-CoT's): ``<think>…</think><answer>…</answer>``
    from ``process`` and ``answer`` (or the answer of ``solution``), no observation."""
    reasoning = _segment_text(record.get("process"), "think")
    answer = _segment_text(record.get("answer"), "answer") or extract_answer(
        str(record.get("solution") or "")
    )
    if not reasoning or not answer:
        raise TrainingDataError(
            f"{_where(record, index)}: a think/answer SFT record needs non-empty 'process' "
            "and 'answer' (or 'solution')"
        )
    return f"<think>{reasoning}</think>\n<answer>{answer}</answer>"


def default_media_root(data_file: Path, media_root: Path | None) -> Path:
    """Where record paths are resolved: ``media_root``, else the data file's folder."""
    return Path(media_root) if media_root is not None else Path(data_file).resolve().parent


def rl_rows(records: Sequence[dict[str, Any]], media_root: Path) -> list[dict[str, Any]]:
    """Dataset rows for RL: the item columns plus TRL's required ``prompt`` column.

    The prompt text itself is built at rollout time from the item (it needs the model's chat
    template and the media); ``prompt`` holds the p2r question text for TRL's logs.
    """
    from p2r_eval.core.prompts import build_prompt

    rows = []
    for index, record in enumerate(records):
        item = record_to_item(record, media_root, index=index)
        prompt = [{"role": "user", "content": build_prompt(item, "p2r")}]
        rows.append({**item_to_row(item), "prompt": prompt})
    return rows


def sft_rows(records: Sequence[dict[str, Any]], media_root: Path, *,
             process_aware: bool = True) -> list[dict[str, Any]]:
    """Dataset rows for SFT: the item columns plus the ``target`` text, process-aware
    (:func:`process_aware_target`) or think/answer only (:func:`think_answer_target`)."""
    target = process_aware_target if process_aware else think_answer_target
    rows = []
    for index, record in enumerate(records):
        item = record_to_item(record, media_root, index=index)
        rows.append({**item_to_row(item), "target": target(record, index=index)})
    return rows


def to_dataset(rows: Iterable[dict[str, Any]]):  # datasets is imported lazily
    """A ``datasets.Dataset`` of ``rows``."""
    from datasets import Dataset

    return Dataset.from_list(list(rows))
