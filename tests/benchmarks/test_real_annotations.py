"""The real annotation files in ../shared/benchmarks (skipped when absent): exact counts,
Video-R1's prompts, the authors' example records, and a replayed predictions set scored
through p2r's API against an independent computation written here from BENCHMARKS.md."""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from p2r_eval.benchmarks.data_check import check_data
from p2r_eval.benchmarks.protocols import aggregate_task, score_item
from p2r_eval.benchmarks.registry import load_task
from p2r_eval.core.prompts import build_prompt
from p2r_eval.judge.verdicts import Verdict
from p2r_eval.media.requests import RequestBuilder, _marking_shared, grouped_by_video
from p2r_eval.media.video import FramePolicy

SHARED = Path(__file__).resolve().parents[3] / "shared"
VIDEO_R1_EVAL = SHARED / "benchmarks" / "video-r1-eval"
EXAMPLES = SHARED / "benchmarks" / "official-examples"
FIVE = ("vsibench", "videommmu", "mmvu", "mvbench", "videomme")

pytestmark = pytest.mark.skipif(not VIDEO_R1_EVAL.is_dir(), reason="../shared is not available")

QUESTION_TEMPLATE = (
    "{Question}\nPlease think about this question as if you were a human pondering deeply. "
    "Engage in an internal dialogue using expressions such as 'let me think', 'wait', 'Hmm', "
    "'oh, I see', 'let's break it down', etc, or other natural language thought expressions "
    "It's encouraged to include self-reflection or verification in the reasoning process. "
    "Provide your detailed reasoning between the <think> and </think> tags, and then give "
    "your final answer between the <answer> and </answer> tags."
)
TYPE_TEMPLATE = {
    "multiple choice": " Please provide only the single option letter (e.g., A, B, C, D, etc.) "
                       "within the <answer> </answer> tags.",
    "numerical": " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> "
                 "</answer> tags.",
    "regression": " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> "
                  "</answer> tags.",
}


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2R_HUB", "0")


@pytest.fixture(scope="module")
def raw() -> dict[str, list[dict[str, Any]]]:
    return {name: json.loads((VIDEO_R1_EVAL / f"eval_{name}.json").read_text()) for name in FIVE}


@pytest.fixture(scope="module")
def loaded() -> dict[str, Any]:
    return {name: load_task(name, VIDEO_R1_EVAL) for name in FIVE}


# -- counts -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_item_and_answer_type_counts(loaded: dict[str, Any]) -> None:
    counts = {name: Counter(item.answer_type for item in task.items)
              for name, task in loaded.items()}
    assert counts == {
        "vsibench": {"multiple choice": 2490, "regression": 2640},
        "videommmu": {"multiple choice": 882, "numerical": 18},
        "mmvu": {"multiple choice": 625},
        "mvbench": {"multiple choice": 4000},
        "videomme": {"multiple choice": 2700},
    }
    assert all(task.source_format == "video-r1" for task in loaded.values())


@pytest.mark.slow
def test_a_run_decodes_each_video_of_the_real_files_once(loaded: dict[str, Any]) -> None:
    builder = RequestBuilder("p2r", FramePolicy())
    decodings = {}
    for name, task in loaded.items():
        order = [shares for _, shares in _marking_shared(builder, grouped_by_video(task.items))]
        decodings[name] = order.count(False)
        assert decodings[name] == len({item.media for item in task.items}), name
    assert decodings == {"vsibench": 288, "videommmu": 300, "mmvu": 379, "mvbench": 3687,
                         "videomme": 900}
    in_file_order = {name: [shares for _, shares in _marking_shared(builder, task.items)]
                     for name, task in loaded.items()}
    assert in_file_order["vsibench"].count(False) == 1613


def test_category_counts(loaded: dict[str, Any]) -> None:
    def count(name: str, field: str) -> Counter:
        return Counter(item.meta[field] for item in loaded[name].items)

    assert count("vsibench", "question_type") == {
        "object_size_estimation": 953, "object_abs_distance": 834, "object_rel_distance": 710,
        "obj_appearance_order": 618, "object_counting": 565, "object_rel_direction_medium": 378,
        "object_rel_direction_hard": 373, "room_size_estimation": 288,
        "object_rel_direction_easy": 217, "route_planning": 194}
    assert count("videommmu", "track") == {"Adaptation": 300, "Comprehension": 300,
                                           "Perception": 300}
    tasks = count("mvbench", "task")
    assert len(tasks) == 20 and set(tasks.values()) == {200}
    assert count("videomme", "duration") == {"short": 900, "medium": 900, "long": 900}
    assert len(count("videomme", "task_type")) == 12 and len(count("videomme", "domain")) == 6
    assert sum(count("mmvu", "subject").values()) == 625 and len(count("mmvu", "subject")) == 27


def test_quirks_of_the_real_files(loaded: dict[str, Any]) -> None:
    mvbench = loaded["mvbench"].items
    assert Counter(item.media_type for item in mvbench) == {"video": 3800, "frames": 200}
    assert {item.meta["task"] for item in mvbench if item.media_type == "frames"} == {
        "episodic_reasoning"}
    single = sorted(int(item.id) for item in mvbench if len(item.options) == 1)
    assert single == [1282, 1299, 1312, 1338, 1363]
    assert {len(item.options) for item in mvbench} == {1, 2, 3, 4, 5}
    videommmu = {item.id: item for item in loaded["videommmu"].items}
    assert videommmu["44"].options == videommmu["224"].options == ("A. ", "B. ", "C. ", "D. ")
    assert {len(i.options) for i in videommmu.values() if i.answer_type == "numerical"} == {0}
    assert {len(i.options) for i in loaded["videomme"].items} == {4}
    assert {len(i.options) for i in loaded["mmvu"].items} == {5}
    vsi = loaded["vsibench"].items
    assert {len(i.options) for i in vsi if i.answer_type == "regression"} == {0}
    assert {len(i.options) for i in vsi if i.answer_type == "multiple choice"} == {2, 3, 4}


def test_prompts_are_exactly_video_r1s(raw: dict[str, list[dict[str, Any]]],
                                       loaded: dict[str, Any]) -> None:
    for name in FIVE:
        for record, item in zip(raw[name], loaded[name].items, strict=True):
            question = record["problem"]
            if record["problem_type"] == "multiple choice":
                question += "Options:\n" + "".join(option + "\n" for option in record["options"])
            expected = (QUESTION_TEMPLATE.format(Question=question)
                        + TYPE_TEMPLATE[record["problem_type"]])
            assert build_prompt(item, "r1") == expected, (name, record["problem_id"])


@pytest.mark.slow
def test_check_data_reports_the_missing_videos(loaded: dict[str, Any]) -> None:
    reports = {r.task: r for r in check_data(FIVE, VIDEO_R1_EVAL, probe=False)}
    distinct = {"vsibench": 288, "videommmu": 300, "mmvu": 583}
    for name in FIVE:
        report = reports[name]
        media = {item.media for item in loaded[name].items}
        assert report.records == report.expected_records == len(loaded[name].items)
        assert len(report.missing) == report.media_files == len(media)
        assert not report.escaping and not report.unreadable and not report.ok
        if name in distinct:
            assert len(media) <= distinct[name] * 2


# -- the authors' example records ------------------------------------------------------------


def test_authors_tempcompass_records(tmp_path: Path) -> None:
    records = [r for r in json.loads((EXAMPLES / "tempcompass.json").read_text())
               if r["task_type"] == "multi-choice"]
    (tmp_path / "tempcompass").mkdir()
    (tmp_path / "tempcompass" / "multi-choice.json").write_text(json.dumps(records))
    items = load_task("tempcompass", tmp_path).items
    assert [item.answer for item in items] == ["A", "C", "B"]
    assert items[0].question == "What is the man doing in the video?"
    assert items[0].options == ("A. dunking a basketball", "B. dribbling a basketball",
                                "C. passing a basketball")
    assert items[1].meta == {"dim": "action", "answer_text": "C. dunking a basketball"}
    assert score_item(items[1], "<answer>C</answer>", "video-r1").score == 1.0
    assert score_item(items[1], "<answer>C. dunking a basketball</answer>", "official").score == 1


def test_authors_vcrbench_records_and_official_verdicts(tmp_path: Path) -> None:
    (tmp_path / "vcrbench").mkdir()
    (tmp_path / "vcrbench" / "vcrbench.json").write_text((EXAMPLES / "vcrbench.json").read_text())
    items = {item.id: item for item in load_task("vcrbench", tmp_path).items}
    choice = items["3"]
    assert choice.question == ("Why didn't the Black man go to rescue the trapped woman after "
                               "the explosion?")
    assert choice.options[3] == "D. An explosion occurred again at the scene."
    assert (choice.answer_type, choice.answer) == ("multiple choice", "D")
    assert items["0"].answer_type == "open-ended" and items["0"].options == ()
    assert [items[i].meta["duration_bucket"] for i in "0123"] == ["60-300", "60-300", "60-300",
                                                                   "0-60"]

    class OfficialVerdicts:
        """Replays the official GPT-4o verdicts, keyed by the prediction it graded."""

        def __init__(self, judged: list[dict[str, Any]]) -> None:
            self.by_prediction = {r["response"]: r["answer_scoring"] == "1" for r in judged}

        def grade(self, question: str, reference: str, prediction: str) -> Verdict:
            correct = self.by_prediction[prediction]
            return Verdict(correct, "", f"answer_scoring {int(correct)}", "gpt-4o", "official",
                           cached=False, input_tokens=0, output_tokens=0, retries=0,
                           mode="grading")

    judged = json.loads((EXAMPLES / "vcrbench_judged.json").read_text())
    judge = OfficialVerdicts(judged)
    for record in judged:
        result = score_item(items[str(record["id"])], record["response"], "official", judge)
        assert result.rule == "official:vcrbench:judge"
        assert result.score == float(record["answer_scoring"])


# -- replay: p2r's scores against an independent computation ------------------------------


def synthetic_output(record: dict[str, Any], rng: random.Random) -> str:
    """A model output of a random style for this record (right, wrong, malformed, ...)."""
    truth = re.search(r"<answer>(.*?)</answer>", record["solution"]).group(1)
    kind = record["problem_type"]
    if kind == "multiple choice":
        letters = [o[0] for o in record["options"]] or ["A"]
        wrong = rng.choice([c for c in "ABCDE" if c != truth])
        return rng.choice([
            f"<think>x</think><answer>{truth}</answer>", f"<answer>{wrong}</answer>",
            f"<answer>{truth.lower()}</answer>", f"<answer>({truth})</answer>", truth,
            f"<answer>{truth}. {rng.choice(letters)}</answer>", "", "<think>never finished",
            f"<answer> {truth} </answer><answer>{wrong}</answer>",
        ])
    value = float(truth)
    if kind == "numerical":
        return rng.choice([
            f"<answer>{truth}</answer>", f"<answer>{value:.1f}</answer>",
            f"<answer>{value:,.0f}</answer>", f"<answer>{round(value, 3) + 0.004}</answer>",
            f"<answer>about {truth}</answer>", f"<answer>{int(value) + 1}</answer>",
        ])
    guess = value * rng.choice([0.5, 0.75, 0.9, 1.0, 1.2, 1.45, 2.0, 3.0])
    return rng.choice([
        f"<answer>{guess:g}</answer>", f"<answer>{guess:.1f}</answer>",
        f"<answer>{guess:,.0f}</answer>", f"<answer>{guess:g} meters</answer>", f"{guess:.2f}",
    ])


def independent_extract(text: str) -> str:
    match = re.search(r"<answer>\s*(.*?)\s*</answer>", text, re.DOTALL)
    return match.group(1).strip() if match else text.strip()


def independent_score(problem_type: str, output: str, solution: str) -> float:
    """Video-R1's eval rules as BENCHMARKS.md states them."""
    prediction, truth = independent_extract(output), independent_extract(solution)
    try:
        if problem_type == "multiple choice":
            return float(prediction == truth)
        if problem_type == "numerical":
            if (("." in prediction or "," in prediction)
                    != ("." in truth or "," in truth)):
                return 0.0
            return float(round(float(prediction.replace(",", "")), 2)
                         == round(float(truth.replace(",", "")), 2))
        predicted, expected = np.float32(prediction.replace(",", "")), np.float32(truth)
        relative = np.abs(predicted - expected) / (np.abs(expected) + np.float32(1e-8))
        thresholds = np.array([0.5 + 0.05 * i for i in range(10)], dtype=np.float32)
        hits = (relative < np.float32(1) - thresholds).astype(np.float32)
        return float(np.mean(hits))         # a float32 mean, as torch's .float().mean()
    except ValueError:
        return 0.0


def independent_task_score(records: list[dict[str, Any]], outputs: list[str],
                           vsi: bool) -> float:
    item_scores = [independent_score(r["problem_type"], o, r["solution"])
                   for r, o in zip(records, outputs, strict=True)]
    accuracy = [s for r, s in zip(records, item_scores, strict=True)
                if r["problem_type"] != "regression"]
    mra = [s for r, s in zip(records, item_scores, strict=True)
           if r["problem_type"] == "regression"]
    if vsi:
        return 100 * (np.mean(accuracy) + np.mean(mra)) / 2
    return 100 * float(np.mean(accuracy))


def test_replayed_predictions_score_as_an_independent_computation(
    tmp_path: Path, raw: dict[str, list[dict[str, Any]]], loaded: dict[str, Any]
) -> None:
    rng = random.Random(0)
    predictions = tmp_path / "outputs.jsonl"
    with predictions.open("w") as handle:
        for name in FIVE:
            for record in raw[name]:
                line = {"task": name, "id": str(record["problem_id"]),
                        "output": synthetic_output(record, rng)}
                handle.write(json.dumps(line) + "\n")
    replay: dict[str, dict[str, str]] = defaultdict(dict)
    for line in predictions.read_text().splitlines():
        entry = json.loads(line)
        replay[entry["task"]][entry["id"]] = entry["output"]

    for name in FIVE:
        items = loaded[name].items
        outputs = [replay[name][item.id] for item in items]
        item_scores = [score_item(item, output, "video-r1").score
                       for item, output in zip(items, outputs, strict=True)]
        result = aggregate_task(name, items, item_scores, "video-r1")
        expected = independent_task_score(raw[name], outputs, vsi=name == "vsibench")
        assert result.score == pytest.approx(expected, abs=1e-9), name
        assert (result.n, result.n_scored) == (len(items), len(items))
        assert 5 < result.score < 95


def test_replayed_breakdowns_and_official_vsibench(raw: dict[str, list[dict[str, Any]]],
                                                   loaded: dict[str, Any]) -> None:
    rng = random.Random(1)
    outputs = {name: [synthetic_output(r, rng) for r in raw[name]] for name in FIVE}

    mvbench = loaded["mvbench"].items
    scores = [score_item(i, o, "video-r1").score for i, o in zip(mvbench, outputs["mvbench"],
                                                                 strict=True)]
    breakdown = aggregate_task("mvbench", mvbench, scores, "video-r1").breakdown
    for block, task in enumerate(sorted({i.meta["task"] for i in mvbench})):
        block_records = raw["mvbench"][200 * block: 200 * (block + 1)]
        block_outputs = outputs["mvbench"][200 * block: 200 * (block + 1)]
        assert breakdown[f"task/{task}"] == pytest.approx(
            independent_task_score(block_records, block_outputs, vsi=False))

    vsi = loaded["vsibench"].items
    scores = [score_item(i, o, "official").score for i, o in zip(vsi, outputs["vsibench"],
                                                                 strict=True)]
    result = aggregate_task("vsibench", vsi, scores, "official")
    per_type: dict[str, list[float]] = defaultdict(list)
    for record, output in zip(raw["vsibench"], outputs["vsibench"], strict=True):
        per_type[record["original_question_type"]].append(independent_vsi_official(record, output))
    by_type = {kind: 100 * float(np.mean(values)) for kind, values in per_type.items()
               if not kind.startswith("object_rel_direction")}
    # The three direction types are averaged with equal weight, not pooled.
    by_type["object_rel_direction"] = float(np.mean([
        100 * np.mean(per_type[f"object_rel_direction_{level}"])
        for level in ("easy", "medium", "hard")]))
    assert len(by_type) == 8
    assert result.breakdown == pytest.approx({f"question_type/{k}": v for k, v in by_type.items()})
    assert result.score == pytest.approx(float(np.mean(list(by_type.values()))))


def independent_vsi_official(record: dict[str, Any], output: str) -> float:
    """The VSI-Bench authors' rules: first token; MC ignoring case; numbers MRA with <=."""
    token = independent_extract(output).split(" ")[0].rstrip(".").strip()
    truth = independent_extract(record["solution"])
    if record["problem_type"] == "multiple choice":
        return float(token.lower() == truth.lower())
    try:
        relative = abs(float(token) - float(truth)) / float(truth)
    except ValueError:
        return 0.0
    return float(np.mean(relative <= 1 - np.linspace(0.5, 0.95, 10)))
