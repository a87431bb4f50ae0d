"""VCR-Bench (Qi et al., 2025): its record transform and its authors' scoring.

Facts are in ``tasks/vcrbench.yaml``. Answers that are time intervals or boxes are scored by
IoU as the authors' ``eval_code/eval.py`` does, under both protocols (Video-R1 has no rule
for them); any other open answer goes to the judge. Multiple choice under ``video-r1``:
Video-R1's exact letter.
"""

from __future__ import annotations

import ast
import math
import warnings
from typing import Any

from p2r_eval.benchmarks.benchmark import (
    Benchmark,
    ItemScore,
    ProtocolScoring,
    judged,
    video_r1_rule,
)
from p2r_eval.benchmarks.formats.transforms import Record, text
from p2r_eval.core.items import Item
from p2r_eval.core.scoring import extract_answer

TIME_IOU_THRESHOLD = 0.7
BOX_IOU_THRESHOLD = 0.5


def question_before_choices(record: Record, field: str, choices_field: str) -> str:
    """The question text before its first listed choice (the release writes ``"...?A. text\\nB.
    ..."`` inside ``question``); the whole text when the choices are empty or not found."""
    question = text(record, field)
    choices = record.get(choices_field) or {}
    first = choices.get("A") if isinstance(choices, dict) else None
    position = question.find(f"A. {first}") if first else -1
    return question[:position] if position > 0 else question


def time_interval(answer: str) -> tuple[float, float] | None:
    """``"[12.5, 20]"`` (a Python literal list of two numbers) or ``None`` (also for an
    integer too large for a float)."""
    try:
        with warnings.catch_warnings():  # model text such as "[1e3x]": no SyntaxWarning noise
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(answer.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int, float)) for v in value
    ):
        try:
            return float(value[0]), float(value[1])
        except OverflowError:
            return None
    return None


def box(answer: str) -> tuple[int, int, int, int] | None:
    """``"[x1, y1, x2, y2]"`` with integer coordinates, or ``None``."""
    if not (answer.startswith("[") and answer.endswith("]")):
        return None
    parts = answer[1:-1].split(",")
    if len(parts) != 4:
        return None
    try:
        x1, y1, x2, y2 = (int(part.strip()) for part in parts)
    except ValueError:
        return None
    return x1, y1, x2, y2


def temporal_iou(first: tuple[float, float], second: tuple[float, float]) -> float:
    """Intersection over union of two ``[start, end]`` intervals; 0 when the union is 0."""
    intersection = max(0.0, min(first[1], second[1]) - max(first[0], second[0]))
    union = max(first[1], second[1]) - min(first[0], second[0])
    return intersection / union if union != 0 else 0.0


def box_iou(first: tuple[int, int, int, int], second: tuple[int, int, int, int]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes; 0 when they do not meet or
    the union is empty."""
    x1, y1 = max(first[0], second[0]), max(first[1], second[1])
    x2, y2 = min(first[2], second[2]), min(first[3], second[3])
    if x2 < x1 or y2 < y1:
        return 0.0
    intersection = (x2 - x1) * (y2 - y1)
    union = ((first[2] - first[0]) * (first[3] - first[1])
             + (second[2] - second[0]) * (second[3] - second[1]) - intersection)
    return intersection / union if union > 0 else 0.0


def geometric_score(prediction: str, truth: str) -> float | None:
    """The rule-based part: both answers intervals (IoU > 0.7) or both boxes (IoU > 0.5);
    ``None`` when the answer is neither and a judge must grade it."""
    truth_interval, predicted_interval = time_interval(truth), time_interval(prediction)
    if truth_interval is not None and predicted_interval is not None:
        iou = temporal_iou(truth_interval, predicted_interval)
        return 1.0 if math.isfinite(iou) and iou > TIME_IOU_THRESHOLD else 0.0
    truth_box, predicted_box = box(truth), box(prediction)
    if truth_box is not None and predicted_box is not None:
        return 1.0 if box_iou(truth_box, predicted_box) > BOX_IOU_THRESHOLD else 0.0
    return None


def answer_rule(item: Item, prediction: str, judge: Any, rule: str) -> ItemScore:
    """Interval or box IoU when both sides are one, else the judge."""
    geometric = geometric_score(prediction, item.answer)
    if geometric is not None:
        return ItemScore(geometric, prediction, f"{rule}:iou")
    return judged(item, prediction, judge, f"{rule}:judge")


def video_r1_protocol_rule(item: Item, output: str, judge: Any) -> ItemScore:
    if item.answer_type == "multiple choice":
        return video_r1_rule(item, output, judge)
    return answer_rule(item, extract_answer(output), judge, "video-r1:vcrbench-open")


def official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    return answer_rule(item, extract_answer(output), judge, "official:vcrbench")


BENCHMARK = Benchmark(
    scoring={"video-r1": ProtocolScoring(video_r1_protocol_rule),
             "official": ProtocolScoring(official_rule)},
    transforms={"question_before_choices": question_before_choices},
)
