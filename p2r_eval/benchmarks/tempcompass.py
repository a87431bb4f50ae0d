"""TempCompass (Liu et al., 2024), multiple-choice part: its record transforms and its
authors' scoring.

Facts are in ``tasks/tempcompass.yaml``. The authors' questions list their options
themselves (``"...?\\nA. left\\nB. right"``) and answer ``"A. left"``; the transforms take
them apart. Under ``official`` the authors' hand-written matching decides, and an answer it
cannot match goes to the judge (or scores 0, as with their ``--disable_llm``).
"""

from __future__ import annotations

import re
from typing import Any

from p2r_eval.benchmarks.benchmark import (
    Benchmark,
    ItemScore,
    ProtocolScoring,
    judged,
    video_r1_rule,
)
from p2r_eval.benchmarks.formats.errors import RecordError
from p2r_eval.benchmarks.formats.transforms import Record, text
from p2r_eval.core.items import Item, option_letter, option_text
from p2r_eval.core.scoring import extract_answer

_OPTION_LINE = re.compile(r"^[A-Z]\. ")

# -- record transforms ----------------------------------------------------------------------


def leading_letter(record: Record, field: str) -> str:
    """``"A. dunking a basketball"`` to ``"A"`` (:func:`~p2r_eval.core.items.option_letter`)."""
    letter = option_letter(text(record, field))
    if letter is None:
        raise RecordError(field, f"expected an answer starting 'X.', got {record[field]!r}")
    return letter


def option_lines(record: Record, field: str) -> tuple[str, ...]:
    """The ``"A. ..."`` lines of a question that lists its options itself."""
    return tuple(line for line in text(record, field).splitlines() if _OPTION_LINE.match(line))


def question_before_option_lines(record: Record, field: str) -> str:
    """The question text up to its first ``"A. ..."`` line, each line kept as written."""
    kept = []
    for line in text(record, field).splitlines():
        if _OPTION_LINE.match(line):
            break
        kept.append(line)
    return "\n".join(kept)


# -- the authors' scoring (eval_multi-choice.py) --------------------------------------------


def choice_match(prediction: str, answer: str) -> float | None:
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


def official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    """The authors' matching rules; an unmatched answer goes to the judge, or scores 0 as
    with the authors' ``--disable_llm`` when there is no judge."""
    prediction = extract_answer(output)
    answer = (item.meta.get("answer_text")
              or f"{item.answer}. {option_text(item.options, item.answer)}")
    matched = choice_match(prediction, answer)
    if matched is not None:
        return ItemScore(matched, prediction, "official:tempcompass-match")
    if judge is not None:
        return judged(item, prediction, judge, "official:tempcompass-judge")
    return ItemScore(0.0, prediction, "official:tempcompass-unmatched",
                     "unmatched and no judge: 0, as the authors' --disable_llm")


BENCHMARK = Benchmark(
    scoring={"video-r1": ProtocolScoring(video_r1_rule),
             "official": ProtocolScoring(official_rule)},
    transforms={"leading_letter": leading_letter, "option_lines": option_lines,
                "question_before_option_lines": question_before_option_lines},
)
