"""MVBench (Li et al., 2024): its record transform and its authors' scoring.

Facts are in ``tasks/mvbench.yaml`` (the 20 tasks, their media folders, the frame folders'
rate). Under ``official`` the authors' ``check_ans`` decides; both protocols report the mean
over the 4,000 items (= the mean over the 20 tasks of 200), broken down by task.
"""

from __future__ import annotations

from typing import Any

from p2r_eval.benchmarks.benchmark import (
    Benchmark,
    ItemScore,
    ProtocolScoring,
    video_r1_rule,
)
from p2r_eval.benchmarks.formats.errors import RecordError
from p2r_eval.benchmarks.formats.transforms import Record, string_list, text
from p2r_eval.core.items import Item, option_text
from p2r_eval.core.scoring import extract_answer


def letter_of_candidate(record: Record, answer_field: str, candidates_field: str) -> str:
    """The letter of the candidate equal to the answer text."""
    answer, candidates = text(record, answer_field), string_list(record, candidates_field)
    if answer not in candidates:
        raise RecordError(answer_field, f"{answer!r} is not one of the candidates")
    return chr(ord("A") + candidates.index(answer))


def reference(letter: str, candidate: str) -> str:
    """The authors' reference string: ``"(A) candidate"``."""
    return f"({letter}) {candidate}"


def check_answer(prediction: str, reference: str) -> bool:
    """The authors' ``check_ans``: the prediction's first space-separated token, lower-cased
    and without dots, is a substring of ``"(a)"``, or ``"(a)"`` is a substring of it. So
    ``"A"``, ``"(A)"``, ``"A."`` and ``"a) text"`` all match ``(A)``, and so does an empty
    prediction (``""`` is inside every string)."""
    prediction_option = prediction.lower().split(" ")[0]
    reference_option = reference.lower().split(" ")[0]
    return (prediction_option.replace(".", "") in reference_option
            or reference_option in prediction_option)


def official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    prediction = extract_answer(output)
    expected = reference(item.answer, option_text(item.options, item.answer))
    note = "empty prediction: the authors' check_ans counts it correct" if not prediction else ""
    score = float(check_answer(prediction, expected))
    return ItemScore(score, prediction.lower().split(" ")[0], "official:mvbench-check", note)


BENCHMARK = Benchmark(
    scoring={"video-r1": ProtocolScoring(video_r1_rule),
             "official": ProtocolScoring(official_rule)},
    transforms={"letter_of_candidate": letter_of_candidate},
)
