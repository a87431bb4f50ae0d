"""A benchmark added from a folder of its own (YAML + module), with nothing in p2r edited: the
real CLI discovers it through --task-dir, loads its records (with the module's own record
transform), reads its real videos, and scores it with the module's rules and aggregation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2r_eval.benchmarks.registry import TASK_PATH_VARIABLE, load_task, paper_task_names
from p2r_eval.cli.main import main
from p2r_eval.media.synthetic_media import write_video

TASK_YAML = """\
name: shapes
title: Shapes
module: shapes.py
sources:
  video-r1:
    file: eval_shapes.json
    record:
      id: problem_id
      question: problem
      options: {fn: option_list, field: options}
      answer: {fn: answer_tag, field: solution}
      answer_type: problem_type
      solution: solution
      media: path
      meta:
        kind: {fn: kind_of_clip, field: path}
breakdown: [kind]
"""

TASK_MODULE = '''\
"""Shapes: the kind of a question is the folder of its clip; the official score is the mean
of the kinds' means and accepts a lower-case letter."""

from p2r_eval.benchmarks.benchmark import (
    Aggregation, Benchmark, ItemScore, ProtocolScoring, video_r1_rule,
)
from p2r_eval.benchmarks.formats.transforms import text
from p2r_eval.core.scoring import extract_answer
from p2r_eval.core.stats import GroupMeanAggregate


def kind_of_clip(record, field):
    return text(record, field).split("/")[0]


def lower_case_rule(item, output, judge):
    answer = extract_answer(output).strip()
    return ItemScore(float(answer.upper() == item.answer), answer, "official:shapes")


MEAN_OF_KINDS = Aggregation(GroupMeanAggregate(
    lambda sample: (f"kind/{sample.meta['kind']}",), "mean of the kinds' means"),
    task_breakdown=False)

BENCHMARK = Benchmark(
    scoring={"video-r1": ProtocolScoring(video_r1_rule),
             "official": ProtocolScoring(lower_case_rule, MEAN_OF_KINDS)},
    transforms={"kind_of_clip": kind_of_clip},
)
'''

# (clip, answer, the model's output): circles 2 of 3 right under both protocols (one answer
# in lower case is right only officially), squares 1 of 1 right.
ITEMS = [
    ("circles/a.mp4", "A", "<answer>A</answer>"),
    ("circles/b.mp4", "B", "<answer>b</answer>"),
    ("circles/c.mp4", "A", "<answer>B</answer>"),
    ("squares/a.mp4", "B", "<answer>B</answer>"),
]


def write_benchmark(root: Path) -> tuple[Path, Path, Path]:
    """The task folder, the data root (records + real videos) and the replay file."""
    tasks, data = root / "my_tasks", root / "data"
    tasks.mkdir()
    (tasks / "shapes.yaml").write_text(TASK_YAML)
    (tasks / "shapes.py").write_text(TASK_MODULE)
    records = []
    for index, (clip, answer, _) in enumerate(ITEMS, start=1):
        write_video(data / clip, seconds=1, fps=8, width=32, height=32, seed=index)
        records.append({"problem_id": index, "problem": "Which shape moves?",
                        "problem_type": "multiple choice", "options": ["A. left", "B. right"],
                        "solution": f"<answer>{answer}</answer>", "path": clip})
    (data / "eval_shapes.json").write_text(json.dumps(records))
    replay = root / "outputs.jsonl"
    replay.write_text("".join(json.dumps({"task": "shapes", "id": str(index), "output": output})
                              + "\n" for index, (_, _, output) in enumerate(ITEMS, start=1)))
    return tasks, data, replay


def evaluate(tasks: Path, data: Path, replay: Path, output: Path, protocol: str) -> dict:
    code = main(["--model", f"replay:{replay}", "--task-dir", str(tasks), "--tasks", "shapes",
                 "--data-root", str(data), "--protocol", protocol, "--output", str(output),
                 "--quiet"])
    assert code == 0
    return json.loads((output / "results.json").read_text())["tasks"]["shapes"]


@pytest.fixture
def no_extra_task_folders(monkeypatch):
    """The CLI adds --task-dir to P2R_TASK_PATH of this process; restored afterwards."""
    monkeypatch.setenv(TASK_PATH_VARIABLE, "")


def test_a_benchmark_from_its_own_folder_is_evaluated_end_to_end(tmp_path,
                                                                  no_extra_task_folders):
    tasks, data, replay = write_benchmark(tmp_path)

    video_r1 = evaluate(tasks, data, replay, tmp_path / "r1", "video-r1")
    assert (video_r1["n"], video_r1["n_scored"]) == (4, 4)
    assert video_r1["score"] == pytest.approx(50.0)  # 2 of 4: "b" is not Video-R1's "B"
    assert video_r1["breakdown"] == pytest.approx({"kind/circles": 100 / 3,
                                                   "kind/squares": 100.0})

    official = evaluate(tasks, data, replay, tmp_path / "official", "official")
    assert official["score"] == pytest.approx((200 / 3 + 100.0) / 2)  # mean of the kinds' means
    assert official["breakdown"] == pytest.approx({"kind/circles": 200 / 3,
                                                   "kind/squares": 100.0})
    samples = [json.loads(line) for line in
               (tmp_path / "official" / "samples" / "shapes.jsonl").read_text().splitlines()]
    assert {sample["rule"] for sample in samples} == {"official:shapes"}


def test_the_new_task_joins_the_known_tasks_but_not_all(tmp_path, no_extra_task_folders,
                                                        monkeypatch):
    tasks, data, _ = write_benchmark(tmp_path)
    monkeypatch.setenv(TASK_PATH_VARIABLE, str(tasks))
    assert "shapes" not in paper_task_names()
    loaded = load_task("shapes", data)
    assert [item.meta["kind"] for item in loaded.items] == ["circles"] * 3 + ["squares"]
    assert all(item.media is not None and item.media.is_file() for item in loaded.items)


def test_a_task_defined_twice_is_refused(tmp_path, no_extra_task_folders, monkeypatch):
    tasks, _, _ = write_benchmark(tmp_path)
    (tasks / "mvbench.yaml").write_text(TASK_YAML.replace("name: shapes", "name: mvbench"))
    monkeypatch.setenv(TASK_PATH_VARIABLE, str(tasks))
    with pytest.raises(ValueError, match="'mvbench' is defined twice"):
        paper_task_names()
