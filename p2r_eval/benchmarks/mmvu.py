"""MMVU (Zhao et al., 2025): its record transform and its authors' scoring.

Facts are in ``tasks/mmvu.yaml``. Under ``video-r1`` the multiple-choice items are scored by
Video-R1's rules and the open-ended ones are not scored (the protocol does not cover them);
under ``official`` a judge extracts and grades every item, as the authors' GPT-4o grader does.
"""

from __future__ import annotations

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
from p2r_eval.core.items import Item
from p2r_eval.core.scoring import extract_answer


def url_path(record: Record, field: str, marker: str) -> str:
    """The part of a download URL after ``marker`` (``.../resolve/main/videos/Art/0.mp4`` to
    ``videos/Art/0.mp4``); a value that is not a URL is a path already."""
    value = text(record, field)
    if "://" not in value:
        return value
    if marker not in value:
        raise RecordError(field, f"URL without {marker!r}: {value}")
    return value.split(marker, 1)[1]


def official_rule(item: Item, output: str, judge: Any) -> ItemScore:
    return judged(item, extract_answer(output), judge, "official:mmvu-judge")


BENCHMARK = Benchmark(
    scoring={"video-r1": ProtocolScoring(video_r1_rule),
             "official": ProtocolScoring(official_rule)},
    transforms={"url_path": url_path},
)
