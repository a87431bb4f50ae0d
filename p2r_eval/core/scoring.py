"""Item-level scoring rules: one implementation each, shared by evaluation, CoT
verification (training/annotate) and RL rewards (training/rewards). Which rule scores which
answer type, in evaluation and in training, is in :mod:`p2r_eval.core.answer_types`.

Every rule takes the extracted prediction and the extracted ground truth as strings and
returns a float in [0, 1]. No rule raises on model text: an unparsable prediction scores 0.
The Video-R1 rules reproduce ``src/eval_bench.py`` of Video-R1 quirks included (see
docs in BENCHMARKS.md and the tests in tests/core/test_scoring_rules.py).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from p2r_eval.core.template import parse

# Video-R1: torch.arange(0.5, 0.95 + 0.025, 0.05, dtype=float32), i.e. 0.5 + i*0.05 cast to float32.
VIDEO_R1_MRA_THRESHOLDS = (0.5 + np.arange(10) * 0.05).astype(np.float32)
# VSI-Bench authors: np.linspace(0.5, 0.95, 10) in float64.
OFFICIAL_MRA_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def extract_answer(text: str) -> str:
    """Video-R1's extraction: the first ``<answer>…</answer>`` content, stripped; if there is
    none, the whole text, stripped. Ground truths go through the same function."""
    segments = parse(text)
    answer = segments.answer
    return (answer if answer is not None else segments.text).strip()


def parse_number(text: str) -> float | None:
    """``float`` of the text with thousands commas removed; ``None`` when it is not a number."""
    try:
        value = float(text.replace(",", ""))
    except (ValueError, AttributeError):
        return None
    return value if math.isfinite(value) else None


def exact_match(prediction: str, truth: str) -> float:
    """Video-R1 multiple choice: case-sensitive equality after stripping whitespace."""
    return 1.0 if prediction.strip() == truth.strip() else 0.0


def _has_decimal_mark(text: str) -> bool:
    return "." in text or "," in text


def numerical_match(prediction: str, truth: str) -> float:
    """Video-R1 numerical: 0 when exactly one side has a '.' or ','; otherwise both parsed
    (commas stripped) and compared after rounding to 2 decimals."""
    if _has_decimal_mark(prediction) != _has_decimal_mark(truth):
        return 0.0
    pred, gt = parse_number(prediction), parse_number(truth)
    if pred is None or gt is None:
        return 0.0
    return 1.0 if round(pred, 2) == round(gt, 2) else 0.0


def mean_relative_accuracy(prediction: str, truth: str, *, inclusive: bool = False) -> float:
    """Mean Relative Accuracy over the thresholds 0.50, 0.55, …, 0.95.

    ``inclusive=False`` is Video-R1's rule: float32, ``|pred-gt| / (|gt| + 1e-8) < 1 - t``
    (strict). ``inclusive=True`` is the VSI-Bench authors' rule: float64 thresholds from
    ``linspace``, ``|pred-gt| / |gt|`` (``|pred|`` when gt is 0) and ``<=``. The two differ on
    boundary cases: pred 3 for gt 4 scores 0.5 under the first and 0.6 under the second.
    Unparsable predictions score 0.
    """
    pred, gt = parse_number(prediction), parse_number(truth)
    if pred is None or gt is None:
        return 0.0
    if inclusive:
        distance = abs(pred - gt) if gt == 0 else abs((pred - gt) / gt)
        return float(np.mean(distance <= 1.0 - OFFICIAL_MRA_THRESHOLDS))
    with np.errstate(over="ignore", invalid="ignore"):
        pred32, gt32 = np.float32(pred), np.float32(gt)
        relative_error = np.abs(pred32 - gt32) / (np.abs(gt32) + np.float32(1e-8))
        hits = relative_error < np.float32(1.0) - VIDEO_R1_MRA_THRESHOLDS
    return float(np.mean(hits.astype(np.float32)))


def relative_error_reward(prediction: str, truth: str) -> float:
    """Video-R1's training reward for regression: ``1 - clip(|pred-gt|/|gt|, 0, 1)``.

    One deliberate difference, at ``gt == 0``: Video-R1 computes
    ``(|pred-gt| + 1e-9) / (|gt| + 1e-9)``, which is 1 for the exact answer 0, so every
    completion of such an item gets reward 0 and its group teaches nothing. Here the exact
    answer gets 1 and any other 0 (elsewhere the 1e-9 terms change the reward by at most
    1e-9 / |gt|).
    """
    pred, gt = parse_number(prediction), parse_number(truth)
    if pred is None or gt is None:
        return 0.0
    if gt == 0:
        return 1.0 if pred == 0 else 0.0
    return 1.0 - min(max(abs(pred - gt) / abs(gt), 0.0), 1.0)


def word_error_rate_score(prediction: str, truth: str) -> float:
    """OCR: ``1 - WER`` (jiwer) clipped to [0, 1]."""
    import jiwer

    if not truth.strip():
        return 1.0 if not prediction.strip() else 0.0
    if not prediction.strip():
        return 0.0
    return min(max(1.0 - jiwer.wer(truth, prediction), 0.0), 1.0)


@lru_cache(maxsize=1)
def _rouge_scorer():  # rouge_score has no types
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge_score(prediction: str, truth: str) -> float:
    """Free-form: mean of ROUGE-1/2/L F1 (rouge_score, with stemmer), clipped to [0, 1]."""
    if not prediction.strip() or not truth.strip():
        return 0.0
    scores = _rouge_scorer().score(truth, prediction)
    mean_f1 = sum(scores[name].fmeasure for name in ("rouge1", "rouge2", "rougeL")) / 3
    return min(max(mean_f1, 0.0), 1.0)
