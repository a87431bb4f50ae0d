"""One sample as the viewer shows it: its status, failure kinds, categories and the output cut
into the pieces that get highlighted.

Everything here is derived with the functions the run itself used (the template parser, the
think-answer check, the correctness thresholds of the process analysis, the awaiting-judge
predicate), so the viewer's counts are the run's counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from p2r_eval.core.items import Item
from p2r_eval.core.prompts import REQUIRED_TAGS, build_prompt, prompt_hash
from p2r_eval.core.template import parse
from p2r_eval.eval.loop import awaits_judge
from p2r_eval.eval.results import Sample
from p2r_eval.report.analysis import (
    CORRECT_THRESHOLDS,
    MISMATCH,
    PERCEPTION,
    REASONING,
    ThinkAnswerCheck,
    failure_kind,
    is_correct,
    think_answer_check,
)

CORRECT, WRONG, ERROR, AWAITING_JUDGE, UNSCORED = (
    "correct", "wrong", "error", "awaiting judge", "unscored")
STATUSES = (CORRECT, WRONG, ERROR, AWAITING_JUDGE, UNSCORED)

TEMPLATE_DEVIATION = "template deviation"
PERCEPTION_ERROR = "perception error"
REASONING_ERROR = "reasoning error"
THINK_ANSWER_MISMATCH = "think-answer mismatch"
FAILURE_KINDS = (TEMPLATE_DEVIATION, PERCEPTION_ERROR, REASONING_ERROR, THINK_ANSWER_MISMATCH)
FAILURE_KIND_MEANINGS = {
    TEMPLATE_DEVIATION: "the output breaks the prompt's template (see its flags)",
    PERCEPTION_ERROR: "wrong answer, observation judged insufficient",
    REASONING_ERROR: "wrong answer, observation judged sufficient",
    THINK_ANSWER_MISMATCH: "the think segment concludes one answer, the answer segment gives "
                           "another",
}


@dataclass(frozen=True)
class OutputPiece:
    """A stretch of the raw output: ``kind`` is a segment tag (the tags included) or
    ``"outside"`` for text in no segment."""

    kind: str
    text: str


@dataclass(frozen=True)
class SampleView:
    """A sample of a run with its item (``item`` is None when the annotations are not found)."""

    task: str
    position: int
    record: Sample
    item: Item | None
    status: str
    failure_kinds: tuple[str, ...]
    categories: tuple[str, ...]
    deviations: tuple[str, ...]
    think_answer: ThinkAnswerCheck | None
    sufficiency: Mapping[str, Any] | None
    prompt: str | None
    prompt_matches: bool | None

    @property
    def id(self) -> str:
        return str(self.record.id)

    @property
    def output(self) -> str | None:
        return self.record.output

    @property
    def output_words(self) -> int:
        return len((self.output or "").split())

    @property
    def pieces(self) -> list[OutputPiece]:
        return output_pieces(self.output or "")


def sample_status(record: Sample) -> str:
    if record.error:
        return ERROR
    if record.score is None:
        return AWAITING_JUDGE if awaits_judge(record) else UNSCORED
    correct = is_correct(record.score, record.answer_type or "", CORRECT_THRESHOLDS)
    return CORRECT if correct else WRONG


def sample_failure_kinds(
    record: Sample,
    status: str,
    deviations: Sequence[str],
    think_answer: ThinkAnswerCheck | None,
    sufficiency: Mapping[str, Any] | None,
) -> tuple[str, ...]:
    """The failure kinds of a sample; perception and reasoning errors need a recorded
    observation-sufficiency verdict (``--attribute-errors``)."""
    kinds = []
    if record.output is not None and deviations:
        kinds.append(TEMPLATE_DEVIATION)
    sufficient = sufficiency.get("sufficient") if sufficiency else None
    attribution = failure_kind({CORRECT: True, WRONG: False}.get(status), sufficient)
    if attribution == PERCEPTION:
        kinds.append(PERCEPTION_ERROR)
    elif attribution == REASONING:
        kinds.append(REASONING_ERROR)
    if think_answer is not None and think_answer.status == MISMATCH:
        kinds.append(THINK_ANSWER_MISMATCH)
    return tuple(kinds)


def sample_categories(record: Sample, breakdown_keys: Sequence[str]) -> tuple[str, ...]:
    """The breakdown categories (``field/value`` as in results.json) the sample belongs to."""
    meta = record.meta or {}
    return tuple(key for key in breakdown_keys
                 if "/" in key and str(meta.get(key.split("/", 1)[0])) == key.split("/", 1)[1])


def build_sample_view(
    task: str,
    position: int,
    record: Sample,
    item: Item | None,
    *,
    prompt_style: str,
    breakdown_keys: Sequence[str],
    sufficiency: Mapping[str, Any] | None = None,
) -> SampleView:
    output = record.output
    deviations: tuple[str, ...] = ()
    think_answer = None
    if output is not None:
        deviations = tuple(parse(output).deviations(REQUIRED_TAGS.get(prompt_style, ())))
        think_answer = think_answer_check(output, record.answer_type or "", record.options)
    status = sample_status(record)
    prompt = build_prompt(item, prompt_style) if item is not None else None
    recorded_hash = record.prompt_hash
    return SampleView(
        task=task,
        position=position,
        record=record,
        item=item,
        status=status,
        failure_kinds=sample_failure_kinds(record, status, deviations, think_answer, sufficiency),
        categories=sample_categories(record, breakdown_keys),
        deviations=deviations,
        think_answer=think_answer,
        sufficiency=sufficiency,
        prompt=prompt,
        prompt_matches=(prompt_hash(prompt) == recorded_hash
                        if prompt is not None and recorded_hash else None),
    )


def output_pieces(text: str) -> list[OutputPiece]:
    """``text`` cut at the first block of each segment (as the parser finds them), so that
    each segment can be highlighted; overlapping (nested) blocks stay in the outer piece."""
    blocks = sorted(parse(text).block_spans.items(), key=lambda entry: entry[1])
    pieces: list[OutputPiece] = []
    cursor = 0
    for tag, (start, end) in blocks:
        if start < cursor:
            continue
        if start > cursor:
            pieces.append(OutputPiece("outside", text[cursor:start]))
        pieces.append(OutputPiece(tag, text[start:end]))
        cursor = end
    if cursor < len(text):
        pieces.append(OutputPiece("outside", text[cursor:]))
    return pieces
