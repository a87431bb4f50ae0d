"""What a benchmark's module declares: its item rule and aggregation per protocol, and the
record transforms its YAML may name.

A benchmark is a YAML file of facts (``tasks/<name>.yaml``: data sources, record mapping,
breakdown) plus, when it needs code, the module its YAML names under ``module:``
(``p2r_eval/benchmarks/vsibench.py``, or a ``.py`` file beside a YAML in a task folder of
your own). The module defines ``BENCHMARK``, a :class:`Benchmark`. A YAML without a module
gets :data:`VIDEO_R1_RULES`: Video-R1's item rules and the plain mean under both protocols.

The generic pieces every module builds on are here too: :func:`video_r1_rule`, :func:`judged`
and :data:`MEAN`. A score of ``None`` means the item was not scored: it needs a judge and
none was given (or the judge's reply had no verdict), or the protocol does not cover it.
Unscored items are left out of the task score and counted in ``n - n_scored``; nothing is
ever scored by a fallback rule instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from p2r_eval.core.answer_types import answer_type, video_r1_item_score
from p2r_eval.core.items import Item
from p2r_eval.core.prompts import question_with_options
from p2r_eval.core.scoring import extract_answer
from p2r_eval.core.stats import GroupMeanAggregate, mean_score

PROTOCOLS = ("video-r1", "official")
"""``video-r1`` reproduces the tables of Video-R1, VideoRFT and VideoP2R; ``official``
follows each benchmark's authors."""
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


ItemRule = Callable[[Item, str, Any], ItemScore]
"""``rule(item, model_output, judge)``; ``judge`` is ``None`` or anything with
``grade(question, reference, prediction)`` returning a verdict whose ``sufficient`` is True,
False or None (:class:`p2r_eval.judge.Judge`)."""


@dataclass(frozen=True)
class Aggregation:
    """How a task's score comes from its items' scores. ``statistic`` is the score: the task
    score and the bootstrap statistic of the leaderboard's intervals and paired tests are the
    same object. The breakdown: the categories the task's YAML names (when
    ``task_breakdown``), then the statistic's outermost groups."""

    statistic: GroupMeanAggregate
    task_breakdown: bool = True


MEAN = Aggregation(mean_score)
"""The mean over scored items (Video-R1's ``mean_acc``; most authors' overall accuracy)."""


@dataclass(frozen=True)
class ProtocolScoring:
    """One protocol's item rule and aggregation."""

    item_rule: ItemRule
    aggregation: Aggregation = MEAN


@dataclass(frozen=True)
class Benchmark:
    """Everything benchmark-specific in code: ``scoring`` per protocol (both of
    :data:`PROTOCOLS`) and ``transforms``, the record transforms its YAML may name besides the
    shared ones of :mod:`p2r_eval.benchmarks.formats.transforms`."""

    scoring: Mapping[str, ProtocolScoring]
    transforms: Mapping[str, Callable[..., Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.scoring) != set(PROTOCOLS):
            raise ValueError(f"a benchmark scores under exactly {', '.join(PROTOCOLS)}; "
                             f"got {', '.join(self.scoring) or 'none'}")


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


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


VIDEO_R1_RULES = Benchmark({protocol: ProtocolScoring(video_r1_rule) for protocol in PROTOCOLS})
"""A benchmark with no code of its own: Video-R1's exact and numerical match and the mean,
under both protocols."""
