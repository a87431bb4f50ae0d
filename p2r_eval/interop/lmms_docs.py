"""p2r's items as lmms-eval documents, and the task functions the YAMLs of ``lmms_tasks/`` name.

A document carries a whole :class:`~p2r_eval.core.items.Item` and the prompt style and protocol
of its task, so each function works from the document alone: :func:`doc_to_text` is p2r's
prompt, :func:`doc_to_visual` the media path (the ``p2r`` model samples it with p2r's
sampler), :func:`process_results` scores with :func:`~p2r_eval.benchmarks.protocols.score_item` and
:func:`aggregate_score` is :func:`~p2r_eval.benchmarks.protocols.aggregate_task`. No rule lives
here.

Nothing in this module imports lmms-eval, so the documents can be checked without it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2r_eval.benchmarks.protocols import aggregate_task, check_protocol, score_item
from p2r_eval.benchmarks.registry import known_task_names, load_task
from p2r_eval.core.items import Item, item_from_row, item_to_row
from p2r_eval.core.prompts import STYLE_TEMPLATES, build_prompt

log = logging.getLogger(__name__)

DOC_SPLIT = "test"
SCORE_METRIC = "p2r_score"
DATA_ROOT_VARIABLE = "P2R_DATA_ROOT"
DOC_KEYS = frozenset({
    "task", "id", "question", "options", "answer", "answer_type", "media", "media_type",
    "solution", "meta", "frame_folder_fps", "prompt_style", "protocol",
})


@dataclass(frozen=True)
class TaskOptions:
    """What a task YAML's ``metadata`` chooses: the p2r benchmark, its prompt style and
    protocol, and the data root (else ``$P2R_DATA_ROOT``, else the demo suite)."""

    task: str
    prompt_style: str = "p2r"
    protocol: str = "video-r1"
    data_root: Path | None = None

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None) -> TaskOptions:
        metadata = metadata or {}
        task = metadata.get("p2r_task")
        if task not in known_task_names():
            raise ValueError(f"task metadata needs p2r_task, one of "
                             f"{', '.join(known_task_names())}; "
                             f"got {task!r}")
        style = metadata.get("prompt_style", cls.prompt_style)
        if style not in STYLE_TEMPLATES:  # the probe's text-only style needs observations
            raise ValueError(f"{task}: unknown prompt_style {style!r}; choose one of "
                             f"{', '.join(STYLE_TEMPLATES)}")
        protocol = metadata.get("protocol", cls.protocol)
        check_protocol(protocol)
        root = metadata.get("data_root") or os.environ.get(DATA_ROOT_VARIABLE) or None
        return cls(task, style, protocol, Path(root).expanduser() if root else None)


def item_doc(item: Item, options: TaskOptions) -> dict[str, Any]:
    """The lmms-eval document of ``item``: its flat row plus the task's prompt and protocol."""
    return {**item_to_row(item), "prompt_style": options.prompt_style,
            "protocol": options.protocol}


def request_identity(doc: dict[str, Any], task: str, doc_id: int) -> tuple[str, str]:
    """``(task, item id)`` a p2r backend is asked under: the p2r benchmark and item id of a
    p2r document (what replay files and error messages name), lmms-eval's task name and
    document index for any other task's document."""
    if DOC_KEYS <= doc.keys():
        return doc["task"], doc["id"]
    return task, str(doc_id)


def task_docs(options: TaskOptions) -> list[dict[str, Any]]:
    """The documents of a benchmark, in p2r's item order, loaded by p2r's task loader."""
    loaded = load_task(options.task, options.data_root)
    log.info("%s: %d items (%s format) from %s", loaded.name, len(loaded.items),
             loaded.source_format, loaded.media_root)
    return [item_doc(item, options) for item in loaded.items]


def doc_to_visual(doc: dict[str, Any]) -> list[str]:
    """The item's media path (video file, frame folder or image), none for text-only items."""
    return [] if doc["media"] is None or doc["media_type"] == "none" else [doc["media"]]


def doc_to_text(doc: dict[str, Any]) -> str:
    return build_prompt(item_from_row(doc), doc["prompt_style"])


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, dict[str, Any]]:
    """The item's score under its task's protocol, with what aggregation needs (the item).

    lmms-eval strips the output before this call; p2r's extraction strips too, so the score
    is the one p2r gives the unstripped output. Judge-graded items are left unscored
    (``item_score`` None), as p2r-eval leaves them without ``--judge``. The field is not
    named ``score``: lmms-eval would take it for a 0/1 score and compute a standard error
    that p2r's aggregations (e.g. VSI-Bench's) do not have.
    """
    scored = score_item(item_from_row(doc), results[0], doc["protocol"])
    return {SCORE_METRIC: {"id": doc["id"], "item_score": scored.score,
                           "extracted": scored.extracted, "rule": scored.rule,
                           "note": scored.note, "doc": doc}}


def aggregate_score(values: list[dict[str, Any]]) -> float:
    """The task's score in percent, p2r's aggregation over the items' scores (unscored items
    left out); NaN when no item was scored (lmms-eval's tables need a number)."""
    docs = [value["doc"] for value in values]
    if not docs:
        return float("nan")
    items = [item_from_row(doc) for doc in docs]
    aggregate = aggregate_task(items[0].task, items, [value["item_score"] for value in values],
                               docs[0]["protocol"])
    return float("nan") if aggregate.score is None else aggregate.score
