"""VideoMMMU (Hu et al., 2025): its record transforms and its authors' scoring.

Facts are in ``tasks/videommmu.yaml``. Under ``video-r1`` items are scored by Video-R1's rules;
under ``official`` by the MMMU-style parsers of lmms-eval's videommmu utils (an option parser
for the multiple-choice questions, an open-answer parser for the rest), quirks included. Both
protocols report the mean, broken down by track and subject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from p2r_eval.benchmarks.benchmark import (
    Benchmark,
    ItemScore,
    ProtocolScoring,
    video_r1_rule,
)
from p2r_eval.benchmarks.formats.errors import RecordError
from p2r_eval.benchmarks.formats.transforms import Record, text
from p2r_eval.core.items import Item
from p2r_eval.core.scoring import extract_answer

# -- record transforms ----------------------------------------------------------------------


def mmmu_subject(record: Record, field: str) -> str:
    """``validation_Chemistry_13`` (or a path ending in it) to ``Chemistry``."""
    parts = PurePosixPath(text(record, field)).stem.split("_")
    if len(parts) < 3:
        raise RecordError(field, f"expected <split>_<Subject>_<n>, got {record[field]!r}")
    return "_".join(parts[1:-1])


def subject_folder_path(
    record: Record, field: str, folders: Mapping[str, Sequence[str]], suffix: str
) -> str:
    """``<folder>/<id><suffix>`` where ``folders`` maps a folder to the subjects it holds
    (the videos are grouped by discipline: ``Science/validation_Chemistry_13.mp4``)."""
    subject = mmmu_subject(record, field)
    for folder, subjects in folders.items():
        if subject in subjects:
            return f"{folder}/{text(record, field)}{suffix}"
    raise RecordError(field, f"subject {subject!r} is in no folder of {sorted(folders)}")


# -- the authors' parsers (lmms-eval videommmu utils + mmmu_mcq_utils) ----------------------

MMMU_EMPTY = "API Error"
MMMU_NO_ANSWER = "No Answer Found."
_EDGE_PUNCTUATION = (",", ".", "!", "?", ";", ":", "'")
_KEY_INDICATORS = (
    "could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ", "are ",
    "in total ", "total ", "identify ", "recognize ", "calculated as ", "counted as ",
    "measured as ", "observed as ", "concluded as ", "found to be ", "equals ",
    "determined to be ", "number of ", "value is ", "adds up to ", "have ", "has ",
)
_TRIVIAL = {":", ",", ".", "!", "?", ";", "'"}
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
    for mark in _EDGE_PUNCTUATION:
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
        candidates = [c for c, option in zip(letters, options, strict=True)
                      if option.lower() in lowered]
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
    indicators = list(_KEY_INDICATORS)
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
        if shortest and shortest.strip() not in _TRIVIAL:
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


def official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    """The option parser for the authors' ``multiple-choice`` questions, the open parser for
    the rest (``question_type`` as the record gives it)."""
    prediction = extract_answer(output)
    note = ("empty response: the authors' aggregation drops it, p2r counts it wrong"
            if prediction == "" else "")
    if item.meta.get("question_type") in ("multiple-choice", "perception"):
        parsed = mmmu_choice(prediction, item.options)
        return ItemScore(float(parsed == item.answer), parsed, "official:mmmu-choice", note)
    parsed_open = mmmu_open_predictions(prediction)
    score = float(prediction != "" and mmmu_open_correct(item.answer, parsed_open))
    return ItemScore(score, repr(parsed_open), "official:mmmu-open", note)


BENCHMARK = Benchmark(
    scoring={"video-r1": ProtocolScoring(video_r1_rule),
             "official": ProtocolScoring(official_rule)},
    transforms={"mmmu_subject": mmmu_subject, "subject_folder_path": subject_folder_path},
)
