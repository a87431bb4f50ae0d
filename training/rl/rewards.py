"""PA-GRPO's rewards, per process, and the switches of the paper's ablations.

Each completion gets six reward components (all in [0, 1] except the length bonus):

=====================  =============================================================
perception_accuracy    1 when the judge finds the ``<observation>`` sufficient to reach the
                       correct answer without the video (text only), 0 when not or when there
                       is no observation; NaN when the judge gave no verdict
perception_format      1 when a single, non-empty, closed observation block comes first
perception_length      ``length_bonus`` when the perception segment has 128-320 tokens *and*
                       perception_accuracy is 1
reasoning_accuracy     the evaluation's scoring rule for the item's answer type
                       (its ``reward_rule`` in :mod:`p2r_eval.core.answer_types`: exact match,
                       ROUGE, WER, relative error) on the extracted answer
reasoning_format       1 when ``<think>`` then ``<answer>`` are well formed after the
                       observation (no missing/empty/unclosed/duplicate/stray tag, no
                       nesting, order kept, no text outside the blocks)
reasoning_length       ``length_bonus`` when the reasoning segment has 320-512 tokens *and*
                       reasoning_accuracy > ``correct_above``
=====================  =============================================================

Length bonuses are gated on correctness: in a group where every answer is wrong, a bonus for
length alone would hand out advantages that teach length, not video reasoning (phantom
advantages). The bonus (0.2) and the gate (accuracy > 0.1) follow Video-R1's length control
(``grpo_trainer.py``, ``len_control``), and so does its group condition: the bonus is paid
only in a group where *more than one* completion is correct (Video-R1 counts over a
device's batch, which its scripts make one group: ``per_device_train_batch_size 1``), so a
lone correct completion is not pushed towards a length. The group condition needs the
whole group, so it is applied to the gathered reward matrix (:func:`gate_length_bonus`).

The process-agnostic baseline (plain GRPO) scores the whole completion instead: ``accuracy``
(reasoning_accuracy), ``format`` (the full observation/think/answer template well formed) and
``length`` (the bonus for 448-832 tokens, the two ranges added, gated on accuracy). It needs
no judge.

Switches (:class:`RewardDesign`) set a component's weight to 0 and change nothing else: the
component is still computed and logged (a researcher watching an ablation still sees its
accuracy), only it no longer reaches the reward. The judge is skipped only when neither the
perception reward nor the perception length gate needs it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from p2r_train.rl.segments import ProcessSplit

from p2r_eval.core.answer_types import reward_rule
from p2r_eval.core.items import Item
from p2r_eval.core.scoring import extract_answer
from p2r_eval.core.template import TAGS, THINK_ANSWER_TAGS, Segments, parse
from p2r_eval.judge.base import JudgeError
from p2r_eval.judge.verdicts import SufficiencyQuery

logger = logging.getLogger(__name__)

PERCEPTION_COMPONENTS = ("perception_accuracy", "perception_format", "perception_length")
REASONING_COMPONENTS = ("reasoning_accuracy", "reasoning_format", "reasoning_length")
AGNOSTIC_COMPONENTS = ("accuracy", "format", "length")
_REASONING_STRUCTURE = ("misordered", "nested", "outside_text")


@dataclass(frozen=True)
class RewardDesign:
    """Which rewards exist and how they combine: PA-GRPO by default, each ablation a switch.

    - ``process_agnostic``: plain GRPO, one reward over the whole completion, one advantage;
    - ``separate_processes=False`` (``--no-separation``): the six components summed into one
      reward, one advantage for all tokens;
    - ``perception_accuracy`` / ``reasoning_accuracy`` / ``length`` False
      (``--no-perception-reward`` / ``--no-reasoning-reward`` / ``--no-length-reward``).
    """

    process_agnostic: bool = False
    separate_processes: bool = True
    perception_accuracy: bool = True
    reasoning_accuracy: bool = True
    length: bool = True
    perception_length_range: tuple[int, int] = (128, 320)
    reasoning_length_range: tuple[int, int] = (320, 512)
    length_bonus: float = 0.2
    correct_above: float = 0.1

    def __post_init__(self) -> None:
        if self.process_agnostic and not self.separate_processes:
            raise ValueError("--no-separation is implied by --process-agnostic; give one of them")
        if self.process_agnostic and not self.perception_accuracy:
            raise ValueError("--process-agnostic has no perception reward to switch off")
        for name in ("perception_length_range", "reasoning_length_range"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high")

    @property
    def agnostic_length_range(self) -> tuple[int, int]:
        return (self.perception_length_range[0] + self.reasoning_length_range[0],
                self.perception_length_range[1] + self.reasoning_length_range[1])

    @property
    def components(self) -> tuple[str, ...]:
        if self.process_agnostic:
            return AGNOSTIC_COMPONENTS
        return PERCEPTION_COMPONENTS + REASONING_COMPONENTS

    def weight(self, component: str) -> float:
        """1 for an active component, 0 for one switched off."""
        switched_off = {
            "perception_accuracy": not self.perception_accuracy,
            "reasoning_accuracy": not self.reasoning_accuracy,
            "accuracy": not self.reasoning_accuracy,
            "perception_length": not self.length,
            "reasoning_length": not self.length,
            "length": not self.length,
        }
        return 0.0 if switched_off.get(component, False) else 1.0

    @property
    def needs_judge(self) -> bool:
        return not self.process_agnostic and (self.perception_accuracy or self.length)

    @property
    def per_token_advantages(self) -> bool:
        """True for PA-GRPO proper: perception and reasoning tokens get their own advantage."""
        return not self.process_agnostic and self.separate_processes


# -- the components ---------------------------------------------------------------------------
def _deviations_about(segments: Segments, tags: Sequence[str]) -> list[str]:
    return [reason for reason in segments.deviations(TAGS)
            if reason.partition(":")[2] in tags]


def perception_format_reward(segments: Segments) -> float:
    """1 when a single, closed, non-empty observation block comes first (nothing before it)."""
    if _deviations_about(segments, ("observation",)):
        return 0.0
    start = segments.block_spans["observation"][0]
    others_first = any(span[0] < start for tag, span in segments.block_spans.items()
                       if tag != "observation")
    text_first = bool(segments.text[:start].strip())
    return 0.0 if others_first or text_first else 1.0


def reasoning_format_reward(segments: Segments) -> float:
    """1 when think then answer are well formed after the observation (module docs)."""
    reasons = _deviations_about(segments, THINK_ANSWER_TAGS)
    reasons += [r for r in segments.deviations(TAGS) if r in _REASONING_STRUCTURE]
    return 0.0 if reasons else 1.0


def template_format_reward(segments: Segments) -> float:
    """The process-agnostic format reward: the whole template well formed."""
    return 1.0 if segments.well_formed(TAGS) else 0.0


def answer_accuracy_reward(output: str, item: Item) -> float:
    """The evaluation's rule for the item's answer type, on ``extract_answer`` of both sides."""
    rule = reward_rule(item.answer_type)
    return float(rule(extract_answer(output), extract_answer(item.solution)))


def length_reward(tokens: int, bounds: tuple[int, int], accuracy: float,
                  design: RewardDesign) -> float:
    """The length bonus, given only when the process is correct (NaN when unknown)."""
    if math.isnan(accuracy):
        return math.nan
    in_range = bounds[0] <= tokens <= bounds[1]
    return design.length_bonus if in_range and accuracy > design.correct_above else 0.0


def length_gates(design: RewardDesign) -> tuple[tuple[str, str], ...]:
    """(length component, the accuracy component that gates it) of ``design``."""
    if design.process_agnostic:
        return (("length", "accuracy"),)
    return (("perception_length", "perception_accuracy"),
            ("reasoning_length", "reasoning_accuracy"))


def gate_length_bonus(rewards: torch.Tensor, design: RewardDesign, group_size: int
                      ) -> torch.Tensor:
    """``rewards`` (N, components, groups of ``group_size`` consecutive rows) with each length
    bonus set to 0 in the groups where at most one completion is correct (accuracy above
    ``design.correct_above``), as Video-R1's length control does. Unknown (NaN) bonuses
    stay unknown."""
    names = list(design.components)
    gated = rewards.clone()
    for length, accuracy in length_gates(design):
        column, gate = names.index(length), names.index(accuracy)
        correct = (rewards[:, gate] > design.correct_above).view(-1, group_size).sum(dim=1)
        paid = (correct > 1).repeat_interleave(group_size) | rewards[:, column].isnan()
        gated[:, column] = torch.where(paid, rewards[:, column],
                                       torch.zeros_like(rewards[:, column]))
    return gated


# -- the judge --------------------------------------------------------------------------------
def _verdict_value(sufficient: bool | None) -> float:
    return math.nan if sufficient is None else float(sufficient)


class PerceptionJudge:
    """Asks a judge whether each observation suffices, in the background and batched.

    ``judge`` is any object with ``sufficiency_many(list[SufficiencyQuery]) -> list[Verdict]``
    (:class:`p2r_eval.judge.core.Judge`, which dedupes, caches and runs requests
    concurrently). :meth:`submit` returns at once, so the judge works while the trainer
    computes log-probabilities. Completions without an observation score 0 without a call.
    When the batch call fails, each query is asked on its own and the failures become NaN.
    """

    def __init__(self, judge: Any) -> None:
        self.judge = judge
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p2r-judge")
        self.failures = 0

    def submit(self, items: Sequence[Item], observations: Sequence[str | None]
               ) -> Future[list[float]]:
        return self._executor.submit(self.scores, list(items), list(observations))

    def scores(self, items: Sequence[Item], observations: Sequence[str | None]) -> list[float]:
        asked = [i for i, text in enumerate(observations) if text and text.strip()]
        queries = [
            SufficiencyQuery(items[i].question, items[i].options, items[i].answer,
                             observations[i] or "", f"{items[i].task}/{items[i].id}")
            for i in asked
        ]
        values = [0.0] * len(observations)
        for index, value in zip(asked, self._ask(queries), strict=True):
            values[index] = value
        return values

    def _ask(self, queries: list[SufficiencyQuery]) -> list[float]:
        if not queries:
            return []
        try:
            return [_verdict_value(v.sufficient) for v in self.judge.sufficiency_many(queries)]
        except JudgeError as error:
            logger.warning("judge batch failed (%s); asking each observation on its own", error)
        return [self._ask_one(query) for query in queries]

    def _ask_one(self, query: SufficiencyQuery) -> float:
        try:
            verdicts = self.judge.sufficiency_many([query])
        except JudgeError as error:
            self.failures += 1
            logger.warning("no judge verdict for %s: %s", query.id, error)
            return math.nan
        return _verdict_value(verdicts[0].sufficient)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# -- one batch --------------------------------------------------------------------------------
@dataclass
class RewardTable:
    """The reward components of a batch of completions, one value per completion."""

    columns: dict[str, list[float]]
    splits: list[ProcessSplit]
    texts: list[str]
    segments: list[Segments] = field(repr=False, default_factory=list)

    def column(self, name: str) -> list[float]:
        return self.columns[name]


def pending_perception(judge: PerceptionJudge | None, design: RewardDesign,
                       items: Sequence[Item], texts: Sequence[str]) -> Future[list[float]] | None:
    """Start the judge on a batch when the design needs it (``None`` otherwise)."""
    if not design.needs_judge:
        return None
    if judge is None:
        raise ValueError("this reward design needs a judge for the perception reward; give "
                         "--judge, or use --process-agnostic, or --no-perception-reward with "
                         "--no-length-reward")
    return judge.submit(items, [parse(text).observation for text in texts])


def score_completions(items: Sequence[Item], texts: Sequence[str],
                      splits: Sequence[ProcessSplit], design: RewardDesign,
                      perception: Future[list[float]] | None) -> RewardTable:
    """Every reward component of every completion (``perception`` from
    :func:`pending_perception`, waited for here)."""
    segments = [parse(text) for text in texts]
    accuracy = [answer_accuracy_reward(text, item) for text, item in zip(texts, items,
                                                                           strict=True)]
    if design.process_agnostic:
        bounds = design.agnostic_length_range
        columns = {
            "accuracy": accuracy,
            "format": [template_format_reward(s) for s in segments],
            "length": [length_reward(split.total_tokens, bounds, acc, design)
                       for split, acc in zip(splits, accuracy, strict=True)],
        }
        return RewardTable(columns, list(splits), list(texts), segments)
    sufficient = perception.result() if perception is not None else [math.nan] * len(texts)
    columns = {
        "perception_accuracy": sufficient,
        "perception_format": [perception_format_reward(s) for s in segments],
        "perception_length": [
            length_reward(split.perception_tokens, design.perception_length_range, value, design)
            for split, value in zip(splits, sufficient, strict=True)
        ],
        "reasoning_accuracy": accuracy,
        "reasoning_format": [reasoning_format_reward(s) for s in segments],
        "reasoning_length": [
            length_reward(split.reasoning_tokens, design.reasoning_length_range, acc, design)
            for split, acc in zip(splits, accuracy, strict=True)
        ],
    }
    return RewardTable(columns, list(splits), list(texts), segments)


def weighted_sum(rewards: torch.Tensor, names: Sequence[str], wanted: Sequence[str],
                 design: RewardDesign) -> torch.Tensor:
    """Sum of the active components among ``wanted``; ``rewards`` is (N, len(names)).

    A NaN in an active component makes the sum NaN (an unknown reward stays unknown);
    switched-off components are left out entirely.
    """
    total = torch.zeros(rewards.shape[0], device=rewards.device)
    for name in wanted:
        if design.weight(name) > 0:
            total = total + design.weight(name) * rewards[:, names.index(name)]
    return total
