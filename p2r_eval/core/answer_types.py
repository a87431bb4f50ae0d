"""Everything p2r knows about an answer type, in one record per type.

An item's answer type decides the instruction appended to its prompt, the rule that scores it
under the Video-R1 protocol, the reward rule of RL training and CoT verification, when the
process analysis counts a score as correct, the verifier's default threshold in CoT
annotation and what the think-answer check compares. Each :class:`AnswerType` holds all of
them; every reader looks them up here (:func:`answer_type`), so adding or changing a type is
one edit.

The prompt suffixes are Video-R1's ``TYPE_TEMPLATE`` (``src/eval_bench.py``), verbatim. The
scoring rules live in :mod:`p2r_eval.core.scoring`; this module only says which applies where.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from p2r_eval.core.scoring import (
    exact_match,
    extract_answer,
    mean_relative_accuracy,
    numerical_match,
    relative_error_reward,
    rouge_score,
    word_error_rate_score,
)

ScoreRule = Callable[[str, str], float]
"""A rule over (extracted prediction, extracted truth), returning a score in [0, 1]."""
ThinkAnswerForm = Literal["letter", "number"]

_TEXT_ANSWER_SUFFIX = " Please provide your text answer within the <answer> </answer> tags."
_NUMBER_ANSWER_SUFFIX = (
    " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> </answer> tags."
)


@dataclass(frozen=True)
class AnswerType:
    """One answer type.

    ``prompt_suffix``: appended to every prompt style's question text. ``eval_rule``: the
    Video-R1 protocol's item rule (``None``: the protocol does not score the type).
    ``reward_rule``: the RL reward and CoT verification rule (``None``: not a training type).
    ``correct_threshold``: the process analysis counts ``score >= correct_threshold`` as
    correct. ``cot_min_score``: the CoT verifier's default threshold (``None`` for types
    without a reward rule). ``think_answer_form``: what the think-answer check compares (an
    option letter, a number; ``None``: the check does not apply).
    """

    name: str
    prompt_suffix: str
    eval_rule: ScoreRule | None
    reward_rule: ScoreRule | None
    correct_threshold: float
    cot_min_score: float | None
    think_answer_form: ThinkAnswerForm | None


ANSWER_TYPE_RECORDS: dict[str, AnswerType] = {
    record.name: record
    for record in (
        AnswerType(
            name="multiple choice",
            prompt_suffix=" Please provide only the single option letter (e.g., A, B, C, D, "
            "etc.) within the <answer> </answer> tags.",
            eval_rule=exact_match,
            reward_rule=exact_match,
            correct_threshold=1.0,
            cot_min_score=1.0,
            think_answer_form="letter",
        ),
        AnswerType(
            name="numerical",
            prompt_suffix=_NUMBER_ANSWER_SUFFIX,
            eval_rule=numerical_match,
            reward_rule=numerical_match,
            correct_threshold=1.0,
            cot_min_score=1.0,
            think_answer_form="number",
        ),
        AnswerType(
            name="regression",
            prompt_suffix=_NUMBER_ANSWER_SUFFIX,
            eval_rule=mean_relative_accuracy,
            reward_rule=relative_error_reward,
            correct_threshold=0.5,
            cot_min_score=0.9,  # within 10% relative error
            think_answer_form="number",
        ),
        AnswerType(
            name="OCR",
            prompt_suffix=" Please transcribe text from the image/video clearly and provide "
            "your text answer within the <answer> </answer> tags.",
            eval_rule=word_error_rate_score,
            reward_rule=word_error_rate_score,
            correct_threshold=0.5,
            cot_min_score=0.8,  # word error rate at most 20%
            think_answer_form=None,
        ),
        AnswerType(
            name="free-form",
            prompt_suffix=_TEXT_ANSWER_SUFFIX,
            eval_rule=rouge_score,
            reward_rule=rouge_score,
            correct_threshold=0.5,
            cot_min_score=0.4,  # mean ROUGE-1/2/L F1
            think_answer_form=None,
        ),
        AnswerType(
            name="open-ended",  # MMVU's open questions: a judge grades them, Video-R1 does not
            prompt_suffix=_TEXT_ANSWER_SUFFIX,
            eval_rule=None,
            reward_rule=None,
            correct_threshold=0.5,
            cot_min_score=None,
            think_answer_form=None,
        ),
    )
}
ANSWER_TYPES: tuple[str, ...] = tuple(ANSWER_TYPE_RECORDS)
TRAINING_ANSWER_TYPES: tuple[str, ...] = tuple(
    name for name, record in ANSWER_TYPE_RECORDS.items() if record.reward_rule is not None
)
"""The types training data may have: those with a reward rule."""


def answer_type(name: str) -> AnswerType:
    """The record of answer type ``name``; a ``ValueError`` names an unknown one."""
    record = ANSWER_TYPE_RECORDS.get(name)
    if record is None:
        raise ValueError(f"unknown answer type {name!r}; choose one of {', '.join(ANSWER_TYPES)}")
    return record


def reward_rule(name: str) -> ScoreRule:
    """The training reward rule of answer type ``name``; a ``ValueError`` names a type that
    has none (or is unknown)."""
    rule = answer_type(name).reward_rule
    if rule is None:
        raise ValueError(f"answer type {name!r} has no training reward rule; training types: "
                         f"{', '.join(TRAINING_ANSWER_TYPES)}")
    return rule


def video_r1_item_score(answer_type_name: str, output: str, solution: str) -> float:
    """Video-R1's evaluation score for one item (``reward_fn`` of its eval script).

    ``output`` is the raw model output, ``solution`` the record's solution string; both go
    through :func:`~p2r_eval.core.scoring.extract_answer`. Types without an eval rule, unknown
    types and any failure score 0.
    """
    prediction, truth = extract_answer(output), extract_answer(solution)
    record = ANSWER_TYPE_RECORDS.get(answer_type_name)
    if record is None or record.eval_rule is None:
        return 0.0
    try:
        return record.eval_rule(prediction, truth)
    except Exception:  # Video-R1 scores any exception as 0
        return 0.0
