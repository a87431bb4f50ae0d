"""Video-MME (Fu et al., 2024): its authors' scoring.

Facts are in ``tasks/videomme.yaml``. Under ``official`` the letter is found as the authors'
``eval_your_results.py`` finds it; both protocols report the mean, broken down by duration,
domain and task type.
"""

from __future__ import annotations

import re
from typing import Any

from p2r_eval.benchmarks.benchmark import (
    Benchmark,
    ItemScore,
    ProtocolScoring,
    video_r1_rule,
)
from p2r_eval.core.items import Item
from p2r_eval.core.scoring import extract_answer

# Two pairs are glued together by missing commas in the authors' list; kept as they are.
ANSWER_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",
    "Best answer:Best option:",
)


def letter(prediction: str) -> str:
    """Remove the answer prefixes, then the first of A-D anywhere (capital letters only, so
    the ``A`` of ``"After"`` counts); ``""`` when there is none. (The authors' extra rule, ``""``
    for more than ten words without any of A-D, gives the same result and is left out.)"""
    text = prediction.strip()
    for prefix in ANSWER_PREFIXES:
        text = text.replace(prefix, "")
    match = re.search(r"[ABCD]", text)
    if match is None:
        return ""
    return match.group(0)


def official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    found = letter(extract_answer(output))
    note = ("no letter found: the authors' script drops it from the denominator, p2r counts "
            "it wrong (an unanswered question never raises a score)" if found == "" else "")
    return ItemScore(float(found == item.answer), found, "official:videomme-letter", note)


BENCHMARK = Benchmark(scoring={"video-r1": ProtocolScoring(video_r1_rule),
                               "official": ProtocolScoring(official_rule)})
