"""Scoring protocols: one item's score, and a task's score with its breakdown.

``video-r1`` (the default) reproduces the tables of Video-R1, VideoRFT and VideoP2R with the
rules of :mod:`p2r_eval.core.scoring`; ``official`` follows each benchmark's authors
(:mod:`p2r_eval.benchmarks.official_scoring`). A task's YAML names its item rule and its
aggregation per
protocol; docs/benchmarks.md describes each.

Under both protocols every rule sees the prediction :func:`~p2r_eval.core.scoring.extract_answer`
gives (the first ``<answer>`` content, else the whole output). A score of ``None`` means the
item was not scored: it needs a judge and none was given (or the judge's reply had no
verdict), or the protocol does not cover it (MMVU's open-ended items under ``video-r1``).
Unscored items are left out of the task score and counted in ``n - n_scored``; nothing is
ever scored by a fallback rule instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from p2r_eval.benchmarks import official_scoring as official
from p2r_eval.benchmarks.registry import TaskSpec, task_spec
from p2r_eval.core.answer_types import answer_type, video_r1_item_score
from p2r_eval.core.items import Item, option_text
from p2r_eval.core.prompts import question_with_options
from p2r_eval.core.scoring import extract_answer
from p2r_eval.core.stats import GroupMeanAggregate, GroupPath, Sample, mean_score

PROTOCOLS = ("video-r1", "official")
NO_JUDGE_NOTE = "not scored: needs a judge, none configured"


@dataclass(frozen=True)
class ItemScore:
    """``score`` in [0, 1] or ``None`` (not scored); ``extracted``: what the rule compared;
    ``rule``: which rule scored it; ``note``: anything a reader of the sample should know;
    ``judge_reply``: the grading judge's reply, verbatim, when a judge graded the item."""

    score: float | None
    extracted: str
    rule: str
    note: str = ""
    judge_reply: str | None = None


@dataclass(frozen=True)
class TaskScore:
    """A task's score and breakdown in percent (``None``: no item scored)."""

    score: float | None
    n: int
    n_scored: int
    breakdown: dict[str, float]


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def score_item(item: Item, output: str, protocol: str, judge: Any = None) -> ItemScore:
    """Score one model output for ``item`` under ``protocol``.

    ``judge`` is anything with ``grade(question, reference, prediction)`` returning a verdict
    whose ``sufficient`` is True, False or None (:class:`p2r_eval.judge.Judge`); without one,
    judge-graded items are not scored. Judge errors propagate to the caller.
    """
    check_protocol(protocol)
    rule_name = task_spec(item.task).scoring[protocol]["item"]
    return ITEM_RULES[rule_name](item, output or "", judge)


# -- item rules ------------------------------------------------------------------------------


def video_r1_rule(item: Item, output: str, judge: Any) -> ItemScore:
    """Video-R1's ``reward_fn``; answer types it has no rule for are not scored."""
    extracted = extract_answer(output)
    if answer_type(item.answer_type).eval_rule is None:
        return ItemScore(None, extracted, f"video-r1:{item.answer_type}",
                         "not scored: outside the Video-R1 protocol for this benchmark")
    score = video_r1_item_score(item.answer_type, output, item.solution)
    return ItemScore(score, extracted, f"video-r1:{item.answer_type}")


def judged(item: Item, prediction: str, judge: Any, rule: str) -> ItemScore:
    """The judge's verdict on ``prediction`` against the reference (letter, for multiple
    choice, with the options in the question)."""
    if judge is None:
        return ItemScore(None, prediction, rule, NO_JUDGE_NOTE)
    verdict = judge.grade(question_with_options(item), item.answer, prediction)
    if verdict.sufficient is None:
        return ItemScore(None, prediction, rule, "not scored: the judge's reply had no verdict",
                         judge_reply=verdict.raw)
    return ItemScore(1.0 if verdict.sufficient else 0.0, prediction, rule, "judged",
                     judge_reply=verdict.raw)


def vcr_answer_rule(item: Item, prediction: str, judge: Any, rule: str) -> ItemScore:
    """VCR-Bench's answer rules: interval or box IoU when both sides are one, else the judge."""
    geometric = official.vcr_geometric_score(prediction, item.answer)
    if geometric is not None:
        return ItemScore(geometric, prediction, f"{rule}:iou")
    return judged(item, prediction, judge, f"{rule}:judge")


def vcrbench_video_r1_rule(item: Item, output: str, judge: Any) -> ItemScore:
    if item.answer_type == "multiple choice":
        return video_r1_rule(item, output, judge)
    return vcr_answer_rule(item, extract_answer(output), judge, "video-r1:vcrbench-open")


def vcrbench_official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    return vcr_answer_rule(item, extract_answer(output), judge, "official:vcrbench")


def vsibench_official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    prediction = extract_answer(output)
    token = official.vsibench_first_token(prediction)
    if item.answer_type == "multiple choice":
        score = official.vsibench_choice_score(prediction, item.answer)
        return ItemScore(score, token, "official:vsibench-choice")
    score = official.vsibench_number_score(prediction, item.answer)
    return ItemScore(score, token, "official:vsibench-mra")


def videommmu_official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    """The option parser for the authors' ``multiple-choice`` questions, the open parser for
    the rest (``question_type`` as the record gives it)."""
    prediction = extract_answer(output)
    note = ("empty response: the authors' aggregation drops it, p2r counts it wrong"
            if prediction == "" else "")
    if item.meta.get("question_type") in ("multiple-choice", "perception"):
        parsed = official.mmmu_choice(prediction, item.options)
        return ItemScore(float(parsed == item.answer), parsed, "official:mmmu-choice", note)
    parsed_open = official.mmmu_open_predictions(prediction)
    score = float(prediction != "" and official.mmmu_open_correct(item.answer, parsed_open))
    return ItemScore(score, repr(parsed_open), "official:mmmu-open", note)


def mmvu_official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    return judged(item, extract_answer(output), judge, "official:mmvu-judge")


def mvbench_official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    prediction = extract_answer(output)
    reference = official.mvbench_reference(item.answer, option_text(item.options, item.answer))
    note = "empty prediction: the authors' check_ans counts it correct" if not prediction else ""
    score = float(official.mvbench_check(prediction, reference))
    return ItemScore(score, prediction.lower().split(" ")[0], "official:mvbench-check", note)


def tempcompass_official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    """The authors' matching rules; an unmatched answer goes to the judge, or scores 0 as
    with the authors' ``--disable_llm`` when there is no judge."""
    prediction = extract_answer(output)
    answer = (item.meta.get("answer_text")
              or f"{item.answer}. {option_text(item.options, item.answer)}")
    matched = official.tempcompass_choice(prediction, answer)
    if matched is not None:
        return ItemScore(matched, prediction, "official:tempcompass-match")
    if judge is not None:
        return judged(item, prediction, judge, "official:tempcompass-judge")
    return ItemScore(0.0, prediction, "official:tempcompass-unmatched",
                     "unmatched and no judge: 0, as the authors' --disable_llm")


def videomme_official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    letter = official.videomme_letter(extract_answer(output))
    note = ("no letter found: the authors' script drops it from the denominator, p2r counts "
            "it wrong (an unanswered question never raises a score)" if letter == "" else "")
    return ItemScore(float(letter == item.answer), letter, "official:videomme-letter", note)


ItemRule = Callable[[Item, str, Any], ItemScore]
ITEM_RULES: dict[str, ItemRule] = {
    "video_r1": video_r1_rule,
    "vcrbench_video_r1": vcrbench_video_r1_rule,
    "vcrbench_official": vcrbench_official_rule,
    "vsibench_official": vsibench_official_rule,
    "videommmu_official": videommmu_official_rule,
    "mmvu_official": mmvu_official_rule,
    "mvbench_official": mvbench_official_rule,
    "tempcompass_official": tempcompass_official_rule,
    "videomme_official": videomme_official_rule,
}


# -- aggregation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregation:
    """How a task's score comes from its items' scores. ``statistic`` is the score: the task
    score here and the bootstrap statistic of the leaderboard's intervals and paired tests are
    the same object. The breakdown: the categories the task's YAML names (when
    ``task_breakdown``), then the statistic's outermost groups."""

    statistic: GroupMeanAggregate
    task_breakdown: bool = True


def aggregation_for(task: str, protocol: str) -> Aggregation:
    """The aggregation ``task``'s YAML names under ``protocol``."""
    check_protocol(protocol)
    return AGGREGATIONS[task_spec(task).scoring[protocol]["aggregate"]]


def aggregate_task(task: str, items: Sequence[Item], scores: Sequence[float | None],
                   protocol: str) -> TaskScore:
    """``task``'s score from its items' scores (``None``: not scored, left out), in percent,
    with the breakdown its YAML names."""
    aggregation = aggregation_for(task, protocol)
    if len(items) != len(scores):
        raise ValueError(f"{task}: {len(items)} items but {len(scores)} scores")
    scored = [(item, float(score))
              for item, score in zip(items, scores, strict=True) if score is not None]
    samples = [{"score": score, "answer_type": item.answer_type, "meta": item.meta}
               for item, score in scored]
    breakdown = breakdown_of(task_spec(task), scored) if aggregation.task_breakdown else {}
    breakdown.update(aggregation.statistic.group_percents(samples))
    return TaskScore(aggregation.statistic.percent(samples), len(items), len(scored), breakdown)


Scored = list[tuple[Item, float]]


def group_means(scored: Scored, field: str) -> dict[str, float]:
    """``{"<field>/<value>": percent}`` for each value of ``meta[field]`` (sorted)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for item, score in scored:
        value = item.meta.get(field)
        if value is not None:
            groups[str(value)].append(score)
    return {f"{field}/{value}": 100.0 * fmean(groups[value]) for value in sorted(groups)}


def breakdown_of(spec: TaskSpec, scored: Scored) -> dict[str, float]:
    breakdown: dict[str, float] = {}
    for field in spec.breakdown:
        breakdown.update(group_means(scored, field))
    return breakdown


def vsibench_video_r1_groups(sample: Sample) -> GroupPath:
    """Video-R1's two parts of VSI-Bench: MRA over the regression items, accuracy over the
    rest."""
    return ("mean_mra",) if sample.get("answer_type") == "regression" else ("mean_acc",)


VSIBENCH_DIRECTION_TYPES = (
    "object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard",
)


def vsibench_official_groups(sample: Sample) -> GroupPath | None:
    """The authors' 8 categories of VSI-Bench: each question type, the three relative
    direction types in one ``object_rel_direction`` category (``None``: no question type)."""
    question_type = (sample.get("meta") or {}).get("question_type")
    if question_type is None:
        return None
    name = str(question_type)
    category = "object_rel_direction" if name in VSIBENCH_DIRECTION_TYPES else name
    return (f"question_type/{category}", name)


AGGREGATIONS: dict[str, Aggregation] = {
    # The mean over scored items (Video-R1's mean_acc; the authors' overall accuracy).
    "mean": Aggregation(mean_score),
    "vsibench_video_r1": Aggregation(GroupMeanAggregate(
        vsibench_video_r1_groups,
        "(mean over non-regression items + mean MRA over regression items) / 2")),
    "vsibench_official": Aggregation(GroupMeanAggregate(
        vsibench_official_groups,
        "mean of the 8 question-type categories (3 relative-direction types averaged first)"),
        task_breakdown=False),
}
