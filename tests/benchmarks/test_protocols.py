"""Item scores under both protocols (every rule and quirk of BENCHMARKS.md, side by side where
the protocols differ), judge-dependent items, and the aggregations with their breakdowns."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from p2r_eval.benchmarks.protocols import (
    PROTOCOLS,
    ItemScore,
    aggregate_task,
    aggregation_for,
    score_item,
)
from p2r_eval.benchmarks.registry import known_task_names, task_spec
from p2r_eval.core.items import Item
from p2r_eval.core.retry import RetryPolicy
from p2r_eval.eval.loop import sample_record
from p2r_eval.judge import make_judge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_server import FakeJudgeServer


def make_item(task: str, answer: str, answer_type: str = "multiple choice",
              options: tuple[str, ...] = ("A. left", "B. right", "C. front", "D. back"),
              **meta: Any) -> Item:
    return Item(task=task, id="1", question="Where is the chair?", options=options,
                answer=answer, answer_type=answer_type, media=None, media_type="none", meta=meta)


def scores(item: Item, output: str, judge: Any = None) -> tuple[float | None, float | None]:
    """(video-r1 score, official score)."""
    return tuple(score_item(item, output, protocol, judge).score for protocol in PROTOCOLS)


@dataclass
class Verdict:
    sufficient: bool | None
    raw: str = "the judge's reply"


class RecordingJudge:
    """Answers ``grade`` with a fixed verdict and records what it was asked."""

    def __init__(self, verdict: bool | None) -> None:
        self.verdict = verdict
        self.calls: list[tuple[str, str, str]] = []

    def grade(self, question: str, reference: str, prediction: str) -> Verdict:
        self.calls.append((question, reference, prediction))
        return Verdict(self.verdict)


def test_each_paper_benchmark_scores_with_its_own_module_under_both_protocols() -> None:
    for name in known_task_names():
        scoring = task_spec(name).benchmark.scoring
        assert set(scoring) == set(PROTOCOLS)
        module = scoring["official"].item_rule.__module__
        expected = "benchmark" if name == "toy" else name
        assert module == f"p2r_eval.benchmarks.{expected}", (name, module)


def test_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        score_item(make_item("mvbench", "A"), "A", "lmms-eval")


# -- extraction: the first <answer> or the whole output -------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [("<think>x</think><answer>A</answer>", (1.0, 1.0)),
     ("<answer> A </answer>", (1.0, 1.0)),
     ("<answer>A</answer> and later <answer>B</answer>", (1.0, 1.0)),   # the first one
     ("<answer>B</answer><answer>A</answer>", (0.0, 0.0)),
     ("A", (1.0, 1.0)),                                                # no tags: whole output
     ("<answer>A", (0.0, 0.0))],                          # unclosed: the whole output
)
def test_answer_extraction(output: str, expected: tuple[float, float]) -> None:
    vsi = make_item("vsibench", "A", question_type="object_rel_distance")
    assert scores(vsi, output) == expected
    assert scores(make_item("mvbench", "A"), output) == expected


# -- multiple choice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "video_r1", "vsibench", "mvbench", "videomme"),
    [("A", 1.0, 1.0, 1.0, 1.0),
     ("A.", 0.0, 1.0, 1.0, 1.0),
     ("(A)", 0.0, 0.0, 1.0, 1.0),
     ("a", 0.0, 1.0, 1.0, 0.0),
     ("A. front-left", 0.0, 1.0, 1.0, 1.0),
     ("The answer is A", 0.0, 0.0, 0.0, 1.0),
     ("B", 0.0, 0.0, 0.0, 0.0)],
)
def test_multiple_choice_under_both_protocols(answer: str, video_r1: float, vsibench: float,
                                               mvbench: float, videomme: float) -> None:
    output = f"<think>...</think><answer>{answer}</answer>"
    assert scores(make_item("vsibench", "A", question_type="route_planning"), output) == (
        video_r1, vsibench)
    assert scores(make_item("mvbench", "A"), output) == (video_r1, mvbench)
    assert scores(make_item("videomme", "A"), output) == (video_r1, videomme)
    assert score_item(make_item("mmvu", "A"), output, "video-r1").score == video_r1


def test_mvbench_official_empty_prediction_quirk_is_flagged() -> None:
    result = score_item(make_item("mvbench", "A"), "<answer></answer>", "official")
    assert result.score == 1.0 and "counts it correct" in result.note
    assert score_item(make_item("mvbench", "A"), "<answer></answer>", "video-r1").score == 0.0


def test_videomme_official_no_letter_counts_wrong_with_a_note() -> None:
    result = score_item(make_item("videomme", "A"), "<answer>no idea</answer>", "official")
    assert (result.score, result.extracted) == (0.0, "")
    assert "denominator" in result.note


# -- numerical (VideoMMMU) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("truth", "prediction", "video_r1", "official"),
    [("4", "4", 1.0, 1.0),
     ("4", "4.0", 0.0, 1.0),                 # decimal-point rule vs float comparison
     ("7243000", "7,243,000", 0.0, 1.0),     # a comma counts as a decimal mark in Video-R1
     ("12.97", "12.974", 1.0, 1.0),          # both round to 2 decimals
     ("12.97", "13", 0.0, 0.0),
     ("360", "360 degrees", 0.0, 1.0),       # official reads numbers inside text
     ("5", "five", 0.0, 0.0)],
)
def test_numerical_under_both_protocols(truth: str, prediction: str, video_r1: float,
                                        official: float) -> None:
    item = make_item("videommmu", truth, "numerical", options=(), question_type="open")
    assert scores(item, f"<answer>{prediction}</answer>") == (video_r1, official)


def test_videommmu_official_uses_the_option_parser_for_multiple_choice() -> None:
    item = make_item("videommmu", "B", options=("A. aldose", "B. ketose"),
                     question_type="multiple-choice")
    assert scores(item, "<answer>The answer is B.</answer>") == (0.0, 1.0)
    empty = score_item(item, "", "official")
    assert empty.score == 0.0 and "drops it" in empty.note


# -- regression (VSI-Bench) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "truth", "video_r1", "official"),
    [("3", "4", 0.5, 0.6),        # strict < vs inclusive <=
     ("2", "4", 0.0, 0.1),
     ("7", "5", 0.2, 0.3),
     ("4", "4", 1.0, 1.0),
     ("4 tables", "4", 0.0, 1.0),   # unparsable for Video-R1; official reads the first token
     ("1,000", "1000", 1.0, 0.0)],  # Video-R1 strips commas; Python float() does not
)
def test_regression_under_both_protocols(prediction: str, truth: str, video_r1: float,
                                         official: float) -> None:
    item = make_item("vsibench", truth, "regression", options=(), question_type="object_counting")
    video_r1_score, official_score = scores(item, f"<answer>{prediction}</answer>")
    assert video_r1_score == pytest.approx(video_r1)
    assert official_score == pytest.approx(official)


# -- TempCompass ----------------------------------------------------------------------------


def test_tempcompass_official_rules_and_disable_llm() -> None:
    item = make_item("tempcompass", "A", options=("A. dunking", "B. passing"),
                     answer_text="A. dunking", dim="action")
    assert scores(item, "<answer>A. dunking</answer>") == (0.0, 1.0)
    assert scores(item, "<answer>A) dunking</answer>") == (0.0, 1.0)
    unmatched = score_item(item, "<answer>The man dunks</answer>", "official")
    assert unmatched.score == 0.0 and "--disable_llm" in unmatched.note
    judge = RecordingJudge(True)
    assert score_item(item, "<answer>The man dunks</answer>", "official", judge).score == 1.0
    assert judge.calls[0][1:] == ("A", "The man dunks")


def test_tempcompass_answer_text_defaults_to_the_option_line() -> None:
    item = make_item("tempcompass", "B", options=("A. dunking", "B. passing"))
    assert scores(item, "<answer>B. passing</answer>") == (0.0, 1.0)


# -- judge-dependent items ------------------------------------------------------------------


def test_mmvu_official_needs_the_judge_for_every_item() -> None:
    item = make_item("mmvu", "A")
    unjudged = score_item(item, "<answer>A</answer>", "official")
    assert unjudged.score is None and "needs a judge" in unjudged.note
    judge = RecordingJudge(False)
    assert score_item(item, "<answer>A</answer>", "official", judge).score == 0.0
    question, reference, prediction = judge.calls[0]
    assert "Options:\nA. left\nB. right" in question and (reference, prediction) == ("A", "A")
    assert score_item(item, "x", "official", RecordingJudge(None)).score is None


def test_mmvu_open_ended_is_outside_the_video_r1_protocol() -> None:
    item = make_item("mmvu", "Dolly zoom", "open-ended", options=())
    result = score_item(item, "<answer>Dolly zoom</answer>", "video-r1", RecordingJudge(True))
    assert result.score is None and "outside the Video-R1 protocol" in result.note


def test_vcrbench_rules_under_both_protocols() -> None:
    choice = make_item("vcrbench", "D")
    assert score_item(choice, "<answer>D</answer>", "video-r1").score == 1.0
    assert score_item(choice, "<answer>D</answer>", "official").score is None   # judge only
    assert score_item(choice, "<answer>D</answer>", "official", RecordingJudge(True)).score == 1
    interval = make_item("vcrbench", "[10, 20]", "open-ended", options=())
    for protocol in PROTOCOLS:
        assert score_item(interval, "<answer>[11, 20]</answer>", protocol).score == 1.0
        assert score_item(interval, "<answer>[0, 20]</answer>", protocol).score == 0.0
    phrase = make_item("vcrbench", "Kitchen", "open-ended", options=())
    for protocol in PROTOCOLS:
        assert score_item(phrase, "<answer>kitchen</answer>", protocol).score is None
        judge = RecordingJudge(True)
        result = score_item(phrase, "<answer>the kitchen</answer>", protocol, judge)
        assert (result.score, judge.calls[0][1:]) == (1.0, ("Kitchen", "the kitchen"))


def test_real_judge_grades_open_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The judge built by p2r_eval.judge, against a local fake of the Anthropic API (it says
    yes when the prediction contains the reference)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    item = make_item("vcrbench", "Living room", "open-ended", options=())
    with FakeJudgeServer() as server:
        judge = make_judge("anthropic", base_url=server.url, model="fake-judge-1",
                           check_endpoint=False, timeout_s=5,
                           retry_policy=RetryPolicy(base_delay_s=0.001, max_delay_s=0.01))
        right = score_item(item, "<answer>In the living room.</answer>", "official", judge)
        wrong = score_item(item, "<answer>In the kitchen.</answer>", "video-r1", judge)
    assert (right.score, wrong.score) == (1.0, 0.0)
    assert right.rule == "official:vcrbench:judge" and right.note == "judged"


# -- aggregation ------------------------------------------------------------------------------


def vsi_items() -> list[Item]:
    kinds = [("object_counting", "regression"), ("room_size_estimation", "regression"),
             ("object_rel_direction_easy", "multiple choice"),
             ("object_rel_direction_hard", "multiple choice"),
             ("object_rel_direction_hard", "multiple choice"),
             ("route_planning", "multiple choice")]
    return [Item("vsibench", str(i), "q", ("A. x", "B. y") if kind == "multiple choice" else (),
                 "A" if kind == "multiple choice" else "4", kind, None, "none",
                 meta={"question_type": question_type})
            for i, (question_type, kind) in enumerate(kinds)]


def test_vsibench_video_r1_is_the_mean_of_accuracy_and_mra() -> None:
    items = vsi_items()
    result = aggregate_task("vsibench", items, [0.5, 1.0, 1.0, 0.0, 1.0, 0.0], "video-r1")
    assert result.breakdown["mean_mra"] == pytest.approx(75.0)
    assert result.breakdown["mean_acc"] == pytest.approx(50.0)
    assert result.score == pytest.approx((75.0 + 50.0) / 2)
    assert result.breakdown["question_type/object_rel_direction_hard"] == pytest.approx(50.0)
    assert (result.n, result.n_scored) == (6, 6)


def test_vsibench_official_is_the_macro_average_over_categories() -> None:
    items = vsi_items()
    result = aggregate_task("vsibench", items, [0.5, 1.0, 1.0, 0.0, 1.0, 0.0], "official")
    direction = (100.0 + 50.0) / 2          # easy 100, hard 50: averaged into one category
    assert result.breakdown == pytest.approx({
        "question_type/object_counting": 50.0,
        "question_type/room_size_estimation": 100.0,
        "question_type/object_rel_direction": direction,
        "question_type/route_planning": 0.0,
    })
    assert result.score == pytest.approx((50.0 + 100.0 + direction + 0.0) / 4)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_bootstrap_statistic_on_the_runs_samples_is_the_task_score(protocol: str) -> None:
    items = [Item(item.task, f"{item.id}-{copy}", item.question, item.options, item.answer,
                  item.answer_type, None, "none", meta=item.meta)
             for copy in range(5) for item in vsi_items()]
    scores = [(i * 7 % 11) / 10 if i % 9 else None for i in range(len(items))]
    records = [sample_record(item, "r1", "<answer>A</answer>", ItemScore(score, "A", "rule"))
               for item, score in zip(items, scores, strict=True)]
    statistic = aggregation_for("vsibench", protocol).statistic
    result = aggregate_task("vsibench", items, scores, protocol)
    assert result.score == pytest.approx(100 * statistic([r for r in records if r.score
                                                          is not None]), abs=1e-12)


def test_mean_aggregation_leaves_unscored_items_out_and_breaks_down() -> None:
    items = [Item("videomme", str(i), "q", ("A. a",), "A", "multiple choice", None, "none",
                  meta={"duration": d, "domain": "Knowledge", "task_type": "OCR Problems"})
             for i, d in enumerate(["short", "short", "medium", "long"])]
    result = aggregate_task("videomme", items, [1.0, 0.0, None, 1.0], "video-r1")
    assert (result.score, result.n, result.n_scored) == (pytest.approx(200 / 3), 4, 3)
    assert result.breakdown["duration/short"] == 50.0
    assert result.breakdown["duration/long"] == 100.0
    assert "duration/medium" not in result.breakdown
    assert aggregate_task("videomme", items, [None] * 4, "official").score is None


def test_aggregation_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 items but 1 scores"):
        aggregate_task("mvbench", vsi_items()[:2], [1.0], "video-r1")
