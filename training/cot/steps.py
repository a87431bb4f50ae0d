"""The three steps of CoT annotation, each a small function over one item.

1. **Generation**: the teacher gets p2r's process-aware prompt (``build_prompt(item, "p2r")``,
   the same user text as evaluation) after a teacher system prompt that asks for annotation
   quality: visual evidence only in the observation, written so that a reader without the
   video could answer from it. Both texts are versioned in :data:`TEACHER_PROMPT_VERSION`.
2. **Verification** (:func:`verify_output`): the output must follow the template exactly
   (``Segments.deviations`` over observation, think, answer) and its answer must score at
   least the problem type's threshold under the training reward rules
   (the type's ``reward_rule`` in :mod:`p2r_eval.core.answer_types`, shared with RL rewards and
   evaluation).
3. **Observation sufficiency** (:func:`sufficiency_entry`): the judge's text-only verdict on
   whether the observation alone supports the correct answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from p2r_eval.core.answer_types import ANSWER_TYPE_RECORDS, TRAINING_ANSWER_TYPES, reward_rule
from p2r_eval.core.prompts import prompt_hash, style_hash
from p2r_eval.core.scoring import extract_answer
from p2r_eval.core.template import PROCESS_AWARE_TAGS, parse

if TYPE_CHECKING:  # the judge package pulls in the API SDKs: imported when a judge runs
    from p2r_eval.judge import Verdict

DEFAULT_TEACHER = "Qwen/Qwen2.5-VL-72B-Instruct"

TEACHER_PROMPT_STYLE = "p2r"
TEACHER_SYSTEM_PROMPT = (
    "You write process-aware reasoning traces for training a video reasoning model. Answer in "
    "exactly three tagged parts and write nothing outside them.\n"
    "<observation>: only visual evidence from the video or image that bears on the question: "
    "objects, people, visible text, positions, counts, actions and their order in time. Make "
    "it detailed enough that someone who cannot see the video could answer the question from "
    "it alone. Do not reason, conclude or name the answer in it.\n"
    "<think>: reason step by step from that evidence to the answer.\n"
    "<answer>: only the final answer, in exactly the form the question asks for."
)
_TEACHER_MATERIAL = TEACHER_SYSTEM_PROMPT + "\0" + style_hash(TEACHER_PROMPT_STYLE)
TEACHER_PROMPT_VERSION = (
    f"teacher-1-{hashlib.sha256(_TEACHER_MATERIAL.encode()).hexdigest()[:8]}"
)
"""Names the teacher's system prompt and the p2r prompt style; changes with either text."""

DEFAULT_MIN_SCORES: dict[str, float] = {
    name: record.cot_min_score
    for name, record in ANSWER_TYPE_RECORDS.items()
    if record.cot_min_score is not None
}
"""p2r's default thresholds, each answer type's ``cot_min_score`` (the paper does not publish
its own): exact answers for multiple choice and numerical; within 10% relative error for
regression; word error rate at most 20% for OCR; mean ROUGE-1/2/L F1 of at least 0.4 for
free-form answers."""
SCORE_TOLERANCE = 1e-9
"""A score this close below its threshold passes: 1 - 0.2 computed in floats must not fail 0.8."""


def teacher_prompt_hash(item_prompt: str) -> str:
    """The hash of everything the teacher reads as text: system prompt and user prompt."""
    return prompt_hash(TEACHER_SYSTEM_PROMPT + "\0" + item_prompt)


def parse_min_scores(specs: list[str]) -> dict[str, float]:
    """Thresholds from ``TYPE=VALUE`` specs (comma lists allowed) over the defaults.

    ``["multiple choice=1.0,OCR=0.7"]`` -> the defaults with OCR at 0.7. A ``ValueError``
    names an unknown problem type or a value outside [0, 1].
    """
    thresholds = dict(DEFAULT_MIN_SCORES)
    for spec in specs:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, separator, value = part.rpartition("=")
            name = name.strip()
            if not separator or name not in TRAINING_ANSWER_TYPES:
                raise ValueError(f"--min-score {part!r}: expected TYPE=VALUE with TYPE one of "
                                 f"{', '.join(TRAINING_ANSWER_TYPES)}")
            try:
                threshold = float(value)
            except ValueError:
                raise ValueError(f"--min-score {part!r}: {value!r} is not a number") from None
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"--min-score {part!r}: the threshold must lie in [0, 1]")
            thresholds[name] = threshold
    return thresholds


@dataclass(frozen=True)
class Verification:
    """Step 2's verdict on one output. ``status`` is ``kept`` or ``dropped``; ``reason`` is
    ``None``, ``template_deviation`` (``deviations`` lists how) or ``wrong_answer``. The
    score is computed either way, for analysis."""

    status: str
    reason: str | None
    deviations: list[str]
    prediction: str
    truth: str
    score: float
    rule: str
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_output(
    output: str, problem_type: str, solution: str, min_scores: dict[str, float]
) -> Verification:
    """Template check, then the problem type's training reward rule against its threshold."""
    deviations = parse(output).deviations(PROCESS_AWARE_TAGS)
    prediction, truth = extract_answer(output), extract_answer(solution)
    rule = reward_rule(problem_type)
    score = float(rule(prediction, truth))
    threshold = min_scores[problem_type]
    if deviations:
        status, reason = "dropped", "template_deviation"
    elif score < threshold - SCORE_TOLERANCE:
        status, reason = "dropped", "wrong_answer"
    else:
        status, reason = "kept", None
    return Verification(
        status, reason, deviations, prediction, truth, score, rule.__name__, threshold
    )


def observation_of(output: str) -> str:
    """The observation segment of a verified (well-formed) output, stripped."""
    return (parse(output).observation or "").strip()


def sufficiency_entry(verdict: Verdict) -> dict[str, Any]:
    """Step 3's log entry for a verdict: kept, dropped (insufficient) or failed (no verdict)."""
    if verdict.sufficient is None:
        status, reason = "failed", "judge_no_verdict"
    elif verdict.sufficient:
        status, reason = "kept", None
    else:
        status, reason = "dropped", "insufficient_observation"
    return {
        "status": status,
        "reason": reason,
        "detail": "the judge's reply holds no verdict" if verdict.sufficient is None else None,
        "sufficient": verdict.sufficient,
        "rationale": verdict.rationale,
        "raw": verdict.raw,
        "model": verdict.model,
        "prompt_version": verdict.prompt_version,
        "cached": verdict.cached,
        "input_tokens": verdict.input_tokens,
        "output_tokens": verdict.output_tokens,
        "retries": verdict.retries,
    }


def judge_failure_entry(error: Exception) -> dict[str, Any]:
    """Step 3's log entry when the judge gave no verdict at all (error after its retries)."""
    from p2r_eval.judge import JudgeError

    detail = str(error) if isinstance(error, JudgeError) else f"{type(error).__name__}: {error}"
    return {"status": "failed", "reason": "judge_error", "detail": detail}

