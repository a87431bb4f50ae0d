"""VSI-Bench (Yang et al., "Thinking in Space", 2024): its scoring under both protocols.

Facts (sources, record mapping, breakdown) are in ``tasks/vsibench.yaml``. Under
``video-r1`` items are scored by Video-R1's rules (exact letter; MRA with strict ``<`` for the
regression items) and the task score is ``(mean accuracy of the multiple-choice items + mean
MRA of the regression items) / 2``. Under ``official`` the authors' ``fuzzy_matching`` (the
first token) is scored, and the task score is the mean of their 8 question-type categories.
"""

from __future__ import annotations

from typing import Any

from p2r_eval.benchmarks.benchmark import (
    Aggregation,
    Benchmark,
    ItemScore,
    ProtocolScoring,
    video_r1_rule,
)
from p2r_eval.core.items import Item
from p2r_eval.core.scoring import extract_answer, mean_relative_accuracy
from p2r_eval.core.stats import GroupMeanAggregate, GroupPath, Sample

# -- the authors' item rules (thinking-in-space / lmms-eval vsibench utils) -------------------


def first_token(prediction: str) -> str:
    """The authors' ``fuzzy_matching``: the text before the first space, trailing dots off."""
    return prediction.split(" ")[0].rstrip(".").strip()


def choice_score(prediction: str, truth: str) -> float:
    """Multiple choice: the first token equals the answer letter, ignoring case
    (``"b. left"`` scores, ``"(B)"`` and ``"The answer is B"`` do not)."""
    return 1.0 if first_token(prediction).lower() == truth.lower() else 0.0


def _python_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def number_score(prediction: str, truth: str) -> float:
    """Numeric answers: MRA with inclusive ``<=`` on the first token, parsed by Python's
    ``float`` (so ``"1,000"`` is unparsable and scores 0, unlike Video-R1's comma rule)."""
    token = first_token(prediction)
    if _python_float(token) is None or _python_float(truth.strip()) is None:
        return 0.0
    return mean_relative_accuracy(token, truth.strip(), inclusive=True)


def official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    prediction = extract_answer(output)
    token = first_token(prediction)
    if item.answer_type == "multiple choice":
        return ItemScore(choice_score(prediction, item.answer), token, "official:vsibench-choice")
    return ItemScore(number_score(prediction, item.answer), token, "official:vsibench-mra")


# -- aggregations: the task score and its bootstrap statistic are one object ------------------


def video_r1_groups(sample: Sample) -> GroupPath:
    """Video-R1's two parts of VSI-Bench: MRA over the regression items, accuracy over the
    rest."""
    return ("mean_mra",) if sample.answer_type == "regression" else ("mean_acc",)


DIRECTION_TYPES = (
    "object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard",
)


def official_groups(sample: Sample) -> GroupPath | None:
    """The authors' 8 categories of VSI-Bench: each question type, the three relative
    direction types in one ``object_rel_direction`` category (``None``: no question type)."""
    question_type = (sample.meta or {}).get("question_type")
    if question_type is None:
        return None
    name = str(question_type)
    category = "object_rel_direction" if name in DIRECTION_TYPES else name
    return (f"question_type/{category}", name)


VIDEO_R1_AGGREGATION = Aggregation(GroupMeanAggregate(
    video_r1_groups, "(mean over non-regression items + mean MRA over regression items) / 2"))
OFFICIAL_AGGREGATION = Aggregation(GroupMeanAggregate(
    official_groups,
    "mean of the 8 question-type categories (3 relative-direction types averaged first)"),
    task_breakdown=False)

BENCHMARK = Benchmark(scoring={
    "video-r1": ProtocolScoring(video_r1_rule, VIDEO_R1_AGGREGATION),
    "official": ProtocolScoring(official_rule, OFFICIAL_AGGREGATION),
})
