"""The replay backend: answers from a file of stored outputs instead of a model.

Re-scoring, judging and leaderboard work can then run on saved generations (ours, or another
harness's) without a GPU or the media. The file is JSON Lines, one object per line:
``{"task": "mvbench", "id": "17", "output": "<think>...</think><answer>B</answer>"}``;
ids are compared as strings, blank lines are ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2r_eval.core.jsonio import jsonl_lines, parse_json
from p2r_eval.core.request import Request
from p2r_eval.models.base import BackendError, DecodingSettings

if TYPE_CHECKING:
    from p2r_eval.media.video import ProcessorFrameSize


class ReplayFileError(BackendError):
    """The replay file is missing or a line of it is malformed (the message says where)."""


def read_replay_file(path: Path) -> dict[tuple[str, str], str]:
    """``{(task, id): output}`` from ``path``; every line checked, duplicates must agree."""
    try:
        lines = jsonl_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ReplayFileError(f"cannot read replay file {path}: {error}") from error
    outputs: dict[tuple[str, str], str] = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, output = parse_replay_line(line, f"{path}:{number}")
        if key in outputs and outputs[key] != output:
            raise ReplayFileError(
                f"{path}:{number}: task {key[0]!r} id {key[1]!r} was already given a different "
                f"output on line {first_line[key]}"
            )
        outputs[key] = output
        first_line.setdefault(key, number)
    return outputs


def parse_replay_line(line: str, where: str) -> tuple[tuple[str, str], str]:
    """``((task, id), output)`` of one line; ``where`` names the file and line in errors."""
    try:
        record = parse_json(line)
    except json.JSONDecodeError as error:
        raise ReplayFileError(f"{where}: not valid JSON ({error})") from error
    if not isinstance(record, dict):
        raise ReplayFileError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in ("task", "id", "output") if key not in record]
    if missing:
        raise ReplayFileError(f"{where}: missing {', '.join(missing)}")
    if not isinstance(record["task"], str) or not record["task"]:
        raise ReplayFileError(f"{where}: task must be a non-empty string")
    if not isinstance(record["id"], (str, int)) or isinstance(record["id"], bool):
        raise ReplayFileError(f"{where}: id must be a string or an integer")
    if not isinstance(record["output"], str):
        raise ReplayFileError(f"{where}: output must be a string")
    return (record["task"], str(record["id"])), record["output"]


class ReplayBackend:
    """Returns the stored output of each request's (task, item id).

    ``decoding`` is only recorded: it should describe how the stored outputs were made.
    """

    name = "replay"
    needs_media = False
    frame_size: ProcessorFrameSize | None = None  # frames go at their decoded size

    def __init__(self, path: Path | str, *, decoding: DecodingSettings | None = None) -> None:
        self.path = Path(path)
        self.outputs = read_replay_file(self.path)
        self.file_sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self._decoding = decoding or DecodingSettings()

    def decoding(self) -> DecodingSettings:
        return self._decoding

    def fingerprint(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "path": str(self.path),
            "file_sha256": self.file_sha256,
            "entries": len(self.outputs),
        }

    def generate(self, requests: Sequence[Request]) -> list[str]:
        return [self.output_for(request) for request in requests]

    def output_for(self, request: Request) -> str:
        key = (request.task, str(request.item_id))
        if key not in self.outputs:
            raise BackendError(
                f"replay file {self.path} has no output for task {key[0]!r} id {key[1]!r}"
            )
        return self.outputs[key]
