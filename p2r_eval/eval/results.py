"""The results contract: what a run folder's ``results.json`` and ``samples/<task>.jsonl`` hold.

One typed, versioned model per record, read and written through :class:`p2r_eval.eval.
runstore.RunStore`: :class:`RunResults` (the file), :class:`RunSettings` (its settings),
:class:`TaskEntry` (one task's scores) and :class:`Sample` (one line of a samples file). The
JSON Schema published in ``docs/results-schema.json`` is generated from these models
(``scripts/results_schema.py``); ``docs/results.md`` explains the contract.

Fields are written in the order declared here; a field the writer did not set is left out
(an error sample has no ``segments``, a run without a judge no ``judge``), so a file read and
written again is the same bytes. ``RESULTS_SCHEMA`` changes when a field is renamed, removed
or changes meaning; a file of another version is refused with a message naming the versions.
Nested records whose shape belongs to another module (frame policy, decoding, fingerprint,
analysis, usage) are typed as JSON objects here and described where they are made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RESULTS_SCHEMA = 1
"""The version of the results contract this p2r writes and reads."""

Number = int | float
"""A JSON number kept as written: an integer stays an integer, so a re-written file is the
same bytes."""
MetaValue = str | int | float | bool | None


class ResultsFormatError(ValueError):
    """A results file or sample line that does not follow the contract; the message names the
    file (and line) and the field."""


class Record(BaseModel):
    """A record of the contract: unknown fields are errors, fields keep their JSON types."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def as_json(self) -> dict[str, Any]:
        """The record as written to disk: declared order, unset fields left out."""
        return self.model_dump(exclude_unset=True)


class ModelRecord(Record):
    """The model a run evaluated."""

    spec: str
    """What ``--model`` was given (a folder, hub id, ``demo`` or ``replay:FILE``)."""
    name: str
    """A short name for tables."""
    fingerprint: dict[str, Any] | None
    """The loaded model's identity (weights' hashes, backend); compared on resume."""


class RunSettings(Record):
    """Everything recorded about how a run computed; all but the outcome-neutral settings
    (:data:`p2r_eval.eval.run_identity.OUTCOME_NEUTRAL_SETTINGS`) are part of its identity."""

    protocol: str
    prompt_style: str
    prompt_hash: str
    frame_policy: dict[str, Any]
    """:meth:`p2r_eval.media.video.FramePolicy.as_dict`."""
    decoding: dict[str, Any]
    """:meth:`p2r_eval.models.base.DecodingSettings.as_dict`."""
    seed: int
    limit: int | None
    batch_size: int | None = None
    shard: list[int] | None = None
    """``[index, count]`` of a shard's run; None otherwise."""
    decode_timeout_s: Number | None = None
    data_root: str | None
    data_files: dict[str, str]
    """sha256 of each annotation file read, by path."""
    input_transport: dict[str, Any] | None = None
    """How inputs reached the model (recorded once the backend is loaded)."""
    merged_shards: int | None = None
    """In a merged data-parallel run: how many shards it merged."""


class TaskEntry(Record):
    """One task's entry: its score and counts, computed from its samples."""

    score: Number | None
    """Percent by the task's protocol; None until an item is scored."""
    n: int
    n_scored: int
    n_errors: int
    n_judge_pending: int | None = None
    complete: bool | None = None
    """Every item of the task has a sample (None: not recorded)."""
    breakdown: dict[str, Any]
    source_format: str | None = None
    data: dict[str, Any] | None = None
    """The task's data identity: annotation files' hashes and a hash over its items."""
    analysis: dict[str, Any] | None = None
    """:meth:`p2r_eval.report.analysis.ProcessAnalysis.as_dict`."""
    wall_time_s: Number


class JudgeRecord(Record):
    """The judge of a run that had one."""

    config: dict[str, Any]
    usage: dict[str, Any]
    gave_up: str | None


class RunResults(Record):
    """A run folder's ``results.json``."""

    schema_version: int = Field(alias="schema")
    """:data:`RESULTS_SCHEMA` of the p2r that wrote the file."""
    model: ModelRecord
    settings: RunSettings
    package: dict[str, Any]
    """:func:`p2r_eval.core.provenance.package_info`."""
    tasks: dict[str, TaskEntry]
    started_at: str
    finished_at: str | None
    """Set once every task is done: a finished run is not redone."""
    backend_usage: dict[str, Any] | None = None
    judge: JudgeRecord | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True,
                              use_attribute_docstrings=True)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, by_alias=True)


class Segments(Record):
    """The process segments of an output and how it breaks the prompt's template."""

    observation: str | None
    think: str | None
    answer: str | None
    deviations: list[str]


class Sample(Record):
    """One line of ``samples/<task>.jsonl``: a generated item (output, segments, score) or
    an item that could not be generated (``error``)."""

    id: str | int
    """The item's id (p2r writes strings; lines keyed by it read as strings)."""
    answer_type: str | None = None
    prompt_hash: str | None = None
    output: str | None = None
    segments: Segments | None = None
    extracted: str | None = None
    score: Number | None = None
    """In [0, 1]; None when not scored (an error, or a judge-graded item awaiting a judge)."""
    rule: str | None = None
    note: str | None = None
    judge_reply: str | None = None
    error: str | None = None
    options: list[str] | None = None
    meta: dict[str, MetaValue] | None = None
    item_sha256: str | None = None
    """The item's content hash: samples pair across runs only where it agrees."""


def parse_results(data: Any, path: Path) -> RunResults:
    """``data`` (a parsed results.json) as :class:`RunResults`; another schema version or a
    field that breaks the contract raises :class:`ResultsFormatError` naming ``path``."""
    if not isinstance(data, dict):
        raise ResultsFormatError(f"{path}: not a JSON object")
    version = data.get("schema")
    if version != RESULTS_SCHEMA:
        raise ResultsFormatError(
            f"{path}: field 'schema' is {version!r}; this p2r reads results schema version "
            f"{RESULTS_SCHEMA} (docs/results.md): use the p2r version that wrote the run, or "
            "run it again")
    try:
        return RunResults.model_validate(data)
    except ValidationError as error:
        raise ResultsFormatError(f"{path}: {first_problem(error)}") from None


def parse_sample(data: Any, where: str) -> Sample:
    """``data`` (one parsed samples line) as :class:`Sample`; ``where`` names file and line."""
    try:
        return Sample.model_validate(data)
    except ValidationError as error:
        raise ResultsFormatError(f"{where}: {first_problem(error)}") from None


UNION_MEMBER_TAGS = frozenset({"int", "float", "str", "bool", "none", "Segments", "JudgeRecord"})
"""The names pydantic adds to an error's location for the member of a union it tried."""


def first_problem(error: ValidationError) -> str:
    """The first problem pydantic found, as ``field 'tasks.mvbench.n': <message>``."""
    problem = error.errors()[0]
    location = [str(part) for part in problem["loc"]]
    while len(location) > 1 and location[-1] in UNION_MEMBER_TAGS:
        location.pop()
    field = ".".join(location) or "(the record)"
    return f"field {field!r}: {problem['msg']}"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the contract: ``results.json`` with the sample line's definition."""
    schema = RunResults.model_json_schema(by_alias=True)
    sample = Sample.model_json_schema()
    schema["$defs"] = {**schema.get("$defs", {}), **sample.pop("$defs", {}), "Sample": sample}
    schema["title"] = f"p2r results, schema version {RESULTS_SCHEMA}"
    return schema


def json_schema_text() -> str:
    """:func:`json_schema` as the text published in ``docs/results-schema.json``."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"

