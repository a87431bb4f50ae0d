"""Scoring under a protocol: one item's score, and a task's score with its breakdown.

``video-r1`` (the default) reproduces the tables of Video-R1, VideoRFT and VideoP2R with the
rules of :mod:`p2r_eval.core.scoring`; ``official`` follows each benchmark's authors. Which
rule and which aggregation a task uses is its module's business (``BENCHMARK.scoring``, see
:mod:`p2r_eval.benchmarks.benchmark`); this module asks the task and applies them, and
docs/benchmarks.md describes each.

Under both protocols every rule sees the model's whole output and extracts with
:func:`~p2r_eval.core.scoring.extract_answer` (the first ``<answer>`` content, else the whole
output).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from p2r_eval.benchmarks.benchmark import (
    NO_JUDGE_NOTE,
    PROTOCOLS,
    Aggregation,
    ItemScore,
    check_protocol,
)
from p2r_eval.benchmarks.registry import TaskSpec, task_spec
from p2r_eval.core.items import Item
from p2r_eval.core.stats import ScoredItem

__all__ = [  # the scoring API; the contract's names are re-exported for its callers
    "NO_JUDGE_NOTE",
    "PROTOCOLS",
    "ItemScore",
    "TaskScore",
    "aggregate_task",
    "aggregation_for",
    "check_protocol",
    "score_item",
]


@dataclass(frozen=True)
class TaskScore:
    """A task's score and breakdown in percent (``None``: no item scored)."""

    score: float | None
    n: int
    n_scored: int
    breakdown: dict[str, float]


def score_item(item: Item, output: str, protocol: str, judge: Any = None) -> ItemScore:
    """Score one model output for ``item`` under ``protocol``.

    ``judge`` is anything with ``grade(question, reference, prediction)`` returning a verdict
    whose ``sufficient`` is True, False or None (:class:`p2r_eval.judge.Judge`); without one,
    judge-graded items are not scored. Judge errors propagate to the caller.
    """
    check_protocol(protocol)
    return task_spec(item.task).benchmark.scoring[protocol].item_rule(item, output or "", judge)


def aggregation_for(task: str, protocol: str) -> Aggregation:
    """How ``task`` aggregates its item scores under ``protocol``."""
    check_protocol(protocol)
    return task_spec(task).benchmark.scoring[protocol].aggregation


def aggregate_task(task: str, items: Sequence[Item], scores: Sequence[float | None],
                   protocol: str) -> TaskScore:
    """``task``'s score from its items' scores (``None``: not scored, left out), in percent,
    with the breakdown its YAML names."""
    aggregation = aggregation_for(task, protocol)
    if len(items) != len(scores):
        raise ValueError(f"{task}: {len(items)} items but {len(scores)} scores")
    scored = [(item, float(score))
              for item, score in zip(items, scores, strict=True) if score is not None]
    samples = [ScoredItem(item.id, score, item.answer_type, item.meta) for item, score in scored]
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
