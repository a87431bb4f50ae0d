"""The benchmark authors' item rules (``--protocol official``), quirks included.

Each function reimplements the named public scorer; the docstrings say which and what it
does that a reader might not expect. They take the prediction already extracted by
:func:`p2r_eval.core.scoring.extract_answer` (the ``<answer>`` content, or the whole output when
there is none) and the reference as the benchmark writes it. Judge-graded parts (MMVU, the
non-geometric VCR-Bench answers, TempCompass's unmatched answers) are in
:mod:`p2r_eval.benchmarks.protocols`; this module has no judge.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections.abc import Sequence

from p2r_eval.core.scoring import mean_relative_accuracy

# -- VSI-Bench (thinking-in-space / lmms-eval vsibench utils) ------------------------------


def vsibench_first_token(prediction: str) -> str:
    """The authors' ``fuzzy_matching``: the text before the first space, trailing dots off."""
    return prediction.split(" ")[0].rstrip(".").strip()


def vsibench_choice_score(prediction: str, truth: str) -> float:
    """Multiple choice: the first token equals the answer letter, ignoring case
    (``"b. left"`` scores, ``"(B)"`` and ``"The answer is B"`` do not)."""
    return 1.0 if vsibench_first_token(prediction).lower() == truth.lower() else 0.0


def _python_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def vsibench_number_score(prediction: str, truth: str) -> float:
    """Numeric answers: MRA with inclusive ``<=`` on the first token, parsed by Python's
    ``float`` (so ``"1,000"`` is unparsable and scores 0, unlike Video-R1's comma rule)."""
    token = vsibench_first_token(prediction)
    if _python_float(token) is None or _python_float(truth.strip()) is None:
        return 0.0
    return mean_relative_accuracy(token, truth.strip(), inclusive=True)


# -- VideoMMMU (lmms-eval videommmu utils + mmmu_mcq_utils) --------------------------------

MMMU_EMPTY = "API Error"
MMMU_NO_ANSWER = "No Answer Found."
_MMMU_EDGE_PUNCTUATION = (",", ".", "!", "?", ";", ":", "'")
_MMMU_KEY_INDICATORS = (
    "could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ", "are ",
    "in total ", "total ", "identify ", "recognize ", "calculated as ", "counted as ",
    "measured as ", "observed as ", "concluded as ", "found to be ", "equals ",
    "determined to be ", "number of ", "value is ", "adds up to ", "have ", "has ",
)
_MMMU_TRIVIAL = {":", ",", ".", "!", "?", ";", "'"}
_NUMBER_WITH_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUMBER_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def bare_option(option: str, letter: str) -> str:
    """``"B. ketose"`` to ``"ketose"`` (the release writes bare option texts; Video-R1's file
    adds the letters)."""
    return option[len(letter) + 1:].lstrip() if option.startswith(f"{letter}.") else option


def mmmu_choice(prediction: str, options: Sequence[str]) -> str:
    """VideoMMMU's option parser: the letter a response picks among ``len(options)`` letters.

    The response's edge punctuation is stripped first, one mark after the other. Then, in
    order: letters written ``X.`` or ``X:`` anywhere (so ``"DNA."`` counts as an ``A.``),
    else ``(X)``, else ``X`` followed by a space; else, for responses over five words, option
    texts found in the response. Several candidates: the one written last. None:
    ``"No Answer Found."``; an empty response: ``"API Error"``.
    """
    if prediction == "":
        return MMMU_EMPTY
    for mark in _MMMU_EDGE_PUNCTUATION:
        prediction = prediction.strip(mark)
    response = f" {prediction} "
    letters = [chr(ord("A") + i) for i in range(len(options))]
    options = [bare_option(option, letter) for letter, option in zip(letters, options,
                                                                     strict=True)]
    by_period = [c for c in letters if f"{c}." in response]
    by_colon = [c for c in letters if f"{c}:" in response]
    candidates = by_period + by_colon
    by_bracket = [] if candidates else [c for c in letters if f"({c})" in response]
    candidates = candidates or by_bracket
    if not candidates:
        candidates = [c for c in letters if f"{c} " in response]
    by_text = False
    if not candidates and len(response.split()) > 5:
        lowered = response.lower()
        candidates = [c for c, text in zip(letters, options, strict=True)
                      if text.lower() in lowered]
        by_text = True
    if not candidates:
        return MMMU_NO_ANSWER
    if len(candidates) == 1:
        return candidates[0]
    if by_text:
        texts = dict(zip(letters, options, strict=True))
        positions = [response.lower().rfind(texts[c].lower()) for c in candidates]
    elif by_period:
        positions = [response.rfind(f"{c}.") for c in candidates]
    elif by_colon:
        positions = [response.rfind(f"{c}:") for c in candidates]
    elif by_bracket:
        positions = [response.rfind(f"({c})") for c in candidates]
    else:
        positions = [response.rfind(f" {c} ") for c in candidates]
    return candidates[positions.index(max(positions))]


def mmmu_numbers(text: str) -> list[str]:
    """Numbers written with thousands commas, in scientific notation, or plainly."""
    return (_NUMBER_WITH_COMMAS.findall(text) + _NUMBER_SCIENTIFIC.findall(text)
            + _NUMBER_SIMPLE.findall(text))


def mmmu_normalize(text: str) -> list[str | float]:
    """A number (commas dropped) rounded to 2 decimals, or lower-cased text; a single
    character is padded (``[" a", "a "]``) so it cannot match inside a word."""
    text = text.strip()
    try:
        return [round(float(text.replace(",", "")), 2)]
    except ValueError:
        pass
    text = text.lower()
    return [f" {text}", f"{text} "] if len(text) == 1 else [text]


def _key_responses(response: str) -> list[str]:
    """The tails of the response after answer-announcing words (``"so "``, ``"is "``, ...),
    the shortest per line; ``=`` counts too on the last line."""
    response = response.strip().strip(".").lower()
    lines = re.split(r"\.\s(?=[A-Z])|\n", response)  # lower-cased: only newlines split
    indicators = list(_MMMU_KEY_INDICATORS)
    keys = []
    for index, line in enumerate(lines):
        if index == len(lines) - 1:
            indicators.append("=")
        shortest = None
        for indicator in indicators:
            if indicator in line:
                tail = line.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _MMMU_TRIVIAL:
            keys.append(shortest)
    return keys or [response]


def mmmu_open_predictions(prediction: str) -> list[str | float]:
    """VideoMMMU's open-answer parser: the normalized key phrases and every number in them
    (``["API Error"]`` for an empty response)."""
    if prediction == "":
        return [MMMU_EMPTY]
    keys = _key_responses(prediction)
    candidates = keys + [number for key in keys for number in mmmu_numbers(key)]
    normalized: list[str | float] = []
    for candidate in candidates:
        for value in mmmu_normalize(candidate):
            if value not in normalized:
                normalized.append(value)
    return normalized


def mmmu_open_correct(truth: str, predictions: Sequence[str | float]) -> bool:
    """A numeric reference must equal a parsed number; a text reference must appear inside a
    parsed phrase."""
    references = mmmu_normalize(truth)
    for prediction in predictions:
        if isinstance(prediction, str):
            if any(isinstance(ref, str) and ref in prediction for ref in references):
                return True
        elif prediction in references:
            return True
    return False


# -- Video-MME (the authors' eval_your_results.py) -----------------------------------------

# Two pairs are glued together by missing commas in the authors' list; kept as they are.
VIDEOMME_ANSWER_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",
    "Best answer:Best option:",
)


def videomme_letter(prediction: str) -> str:
    """Remove the answer prefixes, then the first of A-D anywhere (capital letters only, so
    the ``A`` of ``"After"`` counts); ``""`` when there is none. (The authors' extra rule, ``""``
    for more than ten words without any of A-D, gives the same result and is left out.)"""
    text = prediction.strip()
    for prefix in VIDEOMME_ANSWER_PREFIXES:
        text = text.replace(prefix, "")
    match = re.search(r"[ABCD]", text)
    if match is None:
        return ""
    return match.group(0)


# -- TempCompass (the authors' eval_multi-choice.py) ---------------------------------------


def tempcompass_choice(prediction: str, answer: str) -> float | None:
    """The authors' hand-written matching for multi-choice answers (``answer`` as written,
    ``"A. text"``): the full answer, a bare letter, or a prediction starting ``"X."`` or
    ``"X)"``. ``None`` when none applies (the authors then ask ChatGPT, or score 0 with
    ``--disable_llm``). Only letters A-D are recognised."""
    prediction = prediction.replace("</s>", "")
    if prediction == answer:
        return 1.0
    if prediction in ("A", "B", "C", "D"):
        return float(prediction == answer[:1])
    if prediction[:2] in ("A.", "B.", "C.", "D."):
        return float(prediction.split(".")[0] == answer[:1])
    if prediction[:2] in ("A)", "B)", "C)", "D)"):
        return float(prediction.split(")")[0] == answer[:1])
    return None


# -- MVBench (the authors' check_ans) --------------------------------------------------------


def mvbench_reference(letter: str, candidate: str) -> str:
    """The authors' reference string: ``"(A) candidate"``."""
    return f"({letter}) {candidate}"


def mvbench_check(prediction: str, reference: str) -> bool:
    """The authors' ``check_ans``: the prediction's first space-separated token, lower-cased
    and without dots, is a substring of ``"(a)"``, or ``"(a)"`` is a substring of it. So
    ``"A"``, ``"(A)"``, ``"A."`` and ``"a) text"`` all match ``(A)``, and so does an empty
    prediction (``""`` is inside every string)."""
    prediction_option = prediction.lower().split(" ")[0]
    reference_option = reference.lower().split(" ")[0]
    return (prediction_option.replace(".", "") in reference_option
            or reference_option in prediction_option)


# -- VCR-Bench (the authors' eval_code/eval.py) --------------------------------------------


def vcr_time_interval(text: str) -> tuple[float, float] | None:
    """``"[12.5, 20]"`` (a Python literal list of two numbers) or ``None`` (also for an
    integer too large for a float)."""
    try:
        with warnings.catch_warnings():  # model text such as "[1e3x]": no SyntaxWarning noise
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text.strip())
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


def vcr_box(text: str) -> tuple[int, int, int, int] | None:
    """``"[x1, y1, x2, y2]"`` with integer coordinates, or ``None``."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    parts = text[1:-1].split(",")
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


VCR_TIME_IOU_THRESHOLD = 0.7
VCR_BOX_IOU_THRESHOLD = 0.5


def vcr_geometric_score(prediction: str, truth: str) -> float | None:
    """VCR-Bench's rule-based part: both answers intervals (IoU > 0.7) or both boxes
    (IoU > 0.5); ``None`` when the answer is neither and a judge must grade it."""
    truth_interval, predicted_interval = vcr_time_interval(truth), vcr_time_interval(prediction)
    if truth_interval is not None and predicted_interval is not None:
        iou = temporal_iou(truth_interval, predicted_interval)
        return 1.0 if math.isfinite(iou) and iou > VCR_TIME_IOU_THRESHOLD else 0.0
    truth_box, predicted_box = vcr_box(truth), vcr_box(prediction)
    if truth_box is not None and predicted_box is not None:
        return 1.0 if box_iou(truth_box, predicted_box) > VCR_BOX_IOU_THRESHOLD else 0.0
    return None
