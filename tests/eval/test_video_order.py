"""A run asks every question on one video in a row, so each video is decoded once, whatever
the benchmark's order; the order is the same however often the run is interrupted."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from p2r_eval.core.request import Request
from p2r_eval.eval.loop import EvalSettings, run_evaluation
from p2r_eval.media import requests as media_requests
from p2r_eval.models.base import DecodingSettings

VIDEOS = ("a.mp4", "b.mp4", "c.mp4")
ORDER_IN_FILE = ["a.mp4", "b.mp4", "a.mp4", "c.mp4", "b.mp4", "a.mp4", "c.mp4"]
"""The videos of the task's questions in file order: VideoMMMU and VSI-Bench interleave them."""


class AnswersA:
    """A backend that needs frames and answers A; remembers the items it was asked, in order."""

    name = "answers-a"
    needs_media = True
    frame_size = None

    def __init__(self) -> None:
        self.shown: list[str] = []

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": self.name}

    def decoding(self) -> DecodingSettings:
        return DecodingSettings(max_new_tokens=8)

    def generate(self, requests: Sequence[Request]) -> list[str]:
        for request in requests:
            assert request.frames is not None
            self.shown.append(request.item_id)
        return ["<answer>A</answer>"] * len(requests)


@pytest.fixture
def interleaved_root(tiny_video: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for name in VIDEOS:
        os.link(tiny_video, root / name)
    records = [{"problem_id": number, "problem": f"Question {number}?", "data_type": "video",
                "options": ["A. yes", "B. no"], "problem_type": "multiple choice",
                "solution": "<answer>A</answer>", "path": f"./{video}"}
               for number, video in enumerate(ORDER_IN_FILE, start=1)]
    (root / "eval_mvbench.json").write_text(json.dumps(records))
    return root


@pytest.fixture
def decodings(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each video file is decoded (in this process: no decode workers)."""
    counts: Counter[str] = Counter()
    decode = media_requests._sample_video

    def counting(path: Path, *args: Any, **kwargs: Any) -> Any:
        counts[Path(path).name] += 1
        return decode(path, *args, **kwargs)

    monkeypatch.setattr(media_requests, "_sample_video", counting)
    return counts


def settings_for(root: Path) -> EvalSettings:
    return EvalSettings(model_spec="answers-a", tasks=("mvbench",), data_root=root)


def sample_videos(output: Path) -> list[str]:
    """The video of each line of the run's samples file, in file order (ids are 1-based
    positions in the task's file)."""
    lines = (output / "samples" / "mvbench.jsonl").read_text().splitlines()
    return [ORDER_IN_FILE[int(json.loads(line)["id"]) - 1] for line in lines]


def test_each_video_is_decoded_once_and_its_questions_asked_in_a_row(
    interleaved_root: Path, decodings: Counter[str], tmp_path: Path
) -> None:
    backend = AnswersA()
    results = run_evaluation(settings_for(interleaved_root), backend, tmp_path / "run",
                             show_progress=False)
    assert decodings == Counter({name: 1 for name in VIDEOS})
    assert sample_videos(tmp_path / "run") == ["a.mp4"] * 3 + ["b.mp4"] * 2 + ["c.mp4"] * 2
    assert results.tasks["mvbench"].n_scored == len(ORDER_IN_FILE)
    assert results.tasks["mvbench"].score == 100.0


@pytest.mark.parametrize("kept_lines", [1, 2, 4])
def test_a_run_cut_short_anywhere_resumes_in_the_same_order(
    interleaved_root: Path, decodings: Counter[str], tmp_path: Path, kept_lines: int
) -> None:
    reference = tmp_path / "reference"
    run_evaluation(settings_for(interleaved_root), AnswersA(), reference, show_progress=False)
    whole = (reference / "samples" / "mvbench.jsonl").read_bytes()
    cut = tmp_path / "cut"
    (cut / "samples").mkdir(parents=True)
    kept = b"".join(whole.splitlines(keepends=True)[:kept_lines])
    (cut / "samples" / "mvbench.jsonl").write_bytes(kept)
    results = json.loads((reference / "results.json").read_text())
    (cut / "results.json").write_text(json.dumps({**results, "finished_at": None}))
    backend = AnswersA()
    run_evaluation(settings_for(interleaved_root), backend, cut, show_progress=False)
    assert len(backend.shown) == len(ORDER_IN_FILE) - kept_lines
    assert (cut / "samples" / "mvbench.jsonl").read_bytes() == whole
