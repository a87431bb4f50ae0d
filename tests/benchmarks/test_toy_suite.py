"""The toy suite (p2r_eval.benchmarks.toy_suite) and its rule judge (``--judge toy``).

The generator is checked on the decoded videos, not on its own bookkeeping: the colours,
positions and sizes read back from the real H.264 frames must be the facts the observation
states. The judge runs through ``make_judge`` (cache, verdict parsing) and through
``p2r-train annotate`` with the suite's replay teacher, which must drop exactly the flawed
traces, each at the step that should catch it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from p2r_train.cot.annotate import main as annotate_main

from p2r_eval.benchmarks.registry import load_task, paper_task_names, resolve_task_names
from p2r_eval.benchmarks.toy_suite import (
    FLAWS,
    flaw_of,
    flawed_output,
    toy_items,
    write_toy_suite,
)
from p2r_eval.benchmarks.toy_suite.scenes import (
    BACKGROUND,
    COLOURS,
    FRAMES,
    KINDS,
    SIZES,
    answer_word_from_observation,
    observation_text,
    question_kind,
    rule_target,
)
from p2r_eval.core.answer_types import video_r1_item_score
from p2r_eval.core.template import TAGS, parse
from p2r_eval.judge import JudgeConfigError, JudgeError, make_judge
from p2r_eval.media.video import sample_frames

SIZES_SMALL = {"train": 20, "validation": 8, "test": 12}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_suite(tmp_path_factory.mktemp("toy"), SIZES_SMALL, seed=3)


def colour_at(pixel: np.ndarray) -> str | None:
    """The suite colour nearest to ``pixel`` (None for the grey background)."""
    palette = {name: np.array(rgb) for name, rgb in COLOURS.items()}
    palette[""] = np.array([BACKGROUND] * 3)
    name = min(palette, key=lambda n: np.abs(palette[n] - pixel.astype(int)).sum())
    return name or None


def painted(frame: np.ndarray) -> np.ndarray:
    """Mask of the pixels clearly away from the grey background."""
    return np.abs(frame.astype(int) - BACKGROUND).sum(axis=-1) > 90


def decoded(suite: Path, split_folder: Path, record: dict) -> np.ndarray:
    return sample_frames(split_folder / record["path"], FRAMES).frames


def test_decoded_videos_show_the_stated_facts(suite: Path) -> None:
    records = json.loads((suite / "eval_toy.json").read_text())
    assert Counter(r["kind"] for r in records) == Counter({kind: 3 for kind in KINDS})
    for record, item in zip(records, toy_items("test", 12, seed=3), strict=True):
        frames = decoded(suite, suite, record)
        assert frames.shape == (FRAMES, 56, 56, 3)
        facts = item.scene.facts
        centres = [np.argwhere(painted(frame)).mean(axis=0) for frame in frames]
        if item.scene.kind == "count":
            shown = [colour_at(frames[2 * slot][painted(frames[2 * slot])].mean(axis=0))
                     for slot in range(4)]
            assert shown == facts["sequence"]
        elif item.scene.kind == "direction":
            (y0, x0), (y1, x1) = centres[0], centres[-1]
            moved = {"left": x0 - x1, "right": x1 - x0, "up": y0 - y1, "down": y1 - y0}
            assert max(moved, key=moved.get) == item.scene.options["ABCD".index(item.scene.answer)]
        elif item.scene.kind == "order":
            first = frames[0][painted(frames[0])].mean(axis=0)
            assert colour_at(first) == facts["first"]
            last = Counter(colour_at(pixel) for pixel in frames[-1][painted(frames[-1])])
            assert {name for name, _ in last.most_common(2)} == {facts["first"], facts["second"]}
        else:
            areas = [painted(frame).sum() for frame in (frames[0], frames[-1])]
            expected = [SIZES[facts["start"]] ** 2, SIZES[facts["end"]] ** 2]
            assert np.allclose(areas, expected, rtol=0.35)


def test_same_seed_same_bytes_and_splits_share_no_video(suite: Path, tmp_path: Path) -> None:
    again = write_toy_suite(tmp_path / "again", SIZES_SMALL, seed=3)
    files = sorted(p.relative_to(suite) for p in suite.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (suite / name).read_bytes() == (again / name).read_bytes(), name
    digests: dict[str, set[str]] = {}
    for split, folder in (("test", suite), ("validation", suite / "validation"),
                          ("train", suite / "train")):
        videos = (folder / "videos" / split).glob("*.mp4")
        digests[split] = {hashlib.sha256(v.read_bytes()).hexdigest() for v in videos}
    assert [len(d) for d in digests.values()] == [12, 8, 20]
    assert not (digests["test"] & digests["train"] or digests["validation"] & digests["train"]
                or digests["test"] & digests["validation"])


def test_the_task_loads_and_rule_targets_score_full_marks(suite: Path) -> None:
    loaded = load_task("toy", suite)
    assert len(loaded.items) == 12 and loaded.source_format == "video-r1"
    for item, toy in zip(loaded.items, toy_items("test", 12, seed=3), strict=True):
        assert item.media.is_file() and item.meta == {"kind": toy.scene.kind}
        target = rule_target(toy.scene)
        assert parse(target).well_formed(TAGS)
        assert video_r1_item_score(item.answer_type, target, item.solution) == 1.0
    manifest = json.loads((suite / "manifest.json").read_text())
    assert manifest["chance"]["test"] == pytest.approx((1 / 3 + 1 / 4 + 1 / 4 + 1 / 3) / 4)


def test_toy_is_named_on_its_own_and_all_stays_the_papers_seven() -> None:
    assert resolve_task_names("all") == list(paper_task_names())
    assert resolve_task_names("all,toy") == [*paper_task_names(), "toy"]
    assert resolve_task_names("toy") == ["toy"]


def test_observations_determine_their_answers() -> None:
    for item in toy_items("validation", 40, seed=9):
        scene = item.scene
        kind, colour = question_kind(scene.question)
        assert kind == scene.kind
        word = answer_word_from_observation(kind, colour, observation_text(kind, scene.facts))
        expected = scene.answer if kind == "count" else scene.options["ABCD".index(scene.answer)]
        assert word == expected
    assert question_kind("How many chairs are in the room?") is None
    assert answer_word_from_observation("direction", None, "It moves.") is None
    assert answer_word_from_observation("count", "red", "Squares appear one at a time: "
                                                        "red, purple.") is None


def test_the_toy_judge_through_make_judge(tmp_path: Path) -> None:
    judge = make_judge("toy", cache_dir=tmp_path / "cache")
    scene = next(toy_items("test", 2, seed=1)).scene  # a count question
    target = parse(rule_target(scene))
    sufficient = judge.sufficiency(scene.question, scene.lettered_options, scene.answer,
                                   target.observation, item_id="t0")
    assert sufficient.sufficient is True and not sufficient.cached
    wrong = str(int(scene.answer) % 3 + 1)
    refused = judge.sufficiency(scene.question, (), wrong, target.observation, item_id="t0")
    assert refused.sufficient is False and "not the correct" in refused.rationale
    vague = judge.sufficiency(scene.question, (), scene.answer, "Some squares.", item_id="t0")
    assert vague.sufficient is False
    again = judge.sufficiency(scene.question, (), scene.answer, target.observation, item_id="t0")
    assert again.sufficient is True and again.cached
    assert judge.usage().estimated_cost_usd == 0.0
    with pytest.raises(JudgeError, match="item 'x1'.*only knows the toy suite"):
        judge.sufficiency("What colour is the car?", (), "red", "A red car.", item_id="x1")
    with pytest.raises(JudgeError, match="sufficiency questions only"):
        judge.grade("How many?", "2", "2", item_id="g")
    with pytest.raises(JudgeConfigError, match="takes no model"):
        make_judge("toy", model="claude")


def test_annotate_drops_exactly_the_flawed_traces(suite: Path, tmp_path: Path) -> None:
    train = suite / "train"
    code = annotate_main(["--input", str(train / "train.json"), "--media-root", str(train),
                          "--output", str(tmp_path / "cot"), "--teacher",
                          f"replay:{train / 'teacher.jsonl'}", "--judge", "toy", "--quiet"])
    assert code == 0
    flaws = json.loads((train / "teacher_flaws.json").read_text())
    assert flaws == {f"train-{i:04d}": flaw_of(i) for i in range(20) if flaw_of(i)}
    assert set(flaws.values()) == set(FLAWS)
    dropped = [json.loads(line) for line in (tmp_path / "cot" / "dropped.jsonl").open()]
    step_of_flaw = {"wrong_answer": "verify", "broken_template": "verify",
                    "missing_fact": "judge"}
    assert {d["problem_id"]: d["step"] for d in dropped} == {
        pid: step_of_flaw[flaw] for pid, flaw in flaws.items()}
    kept = [json.loads(line) for line in (tmp_path / "cot" / "cot.jsonl").open()]
    assert len(kept) == 20 - len(flaws)
    assert all(parse(k["output"]).well_formed(TAGS) for k in kept)


def test_flawed_outputs_differ_from_the_rule_target_as_named() -> None:
    scene = next(toy_items("train", 1, seed=0)).scene
    assert "</think>" not in flawed_output(scene, "broken_template")
    assert parse(flawed_output(scene, "wrong_answer")).answer != scene.answer
    vague = parse(flawed_output(scene, "missing_fact")).observation
    assert answer_word_from_observation(scene.kind, scene.facts.get("colour"), vague) is None
