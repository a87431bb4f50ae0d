"""Task definitions and loading: both formats of every benchmark, strict validation, media
paths that may not leave the data root, the hub fallback's error, and the demo suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from p2r_eval.benchmarks.demo_suite import demo_version, prepare_demo_data
from p2r_eval.benchmarks.registry import (
    AnnotationError,
    DataNotFoundError,
    demo_data_root,
    load_task,
    paper_task_names,
    resolve_task_names,
    task_spec,
)
from p2r_eval.core.items import ANSWER_TYPES
from p2r_eval.core.prompts import build_prompt

R1_TEMPLATE_TAIL = "Please think about this question as if you were a human pondering deeply."


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2R_HUB", "0")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_demo_data(tmp_path_factory.mktemp("demo-cache"))


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_parquet(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def r1_record(pid: int, **changes: Any) -> dict[str, Any]:
    record = {"problem_id": pid, "problem": "Which way?", "data_type": "video",
              "problem_type": "multiple choice", "original_question_type": "",
              "options": ["A. left", "B. right"], "process": "", "solution": "<answer>B</answer>",
              "path": f"./Evaluation/MVBench/ssv2_video/{pid}.mp4"}
    record.update(changes)
    return record


# -- names and specs --------------------------------------------------------------------------


def test_resolve_task_names() -> None:
    assert resolve_task_names("all") == list(paper_task_names())
    assert paper_task_names() == ("vsibench", "videommmu", "mmvu", "vcrbench", "mvbench",
                                  "tempcompass", "videomme")
    assert resolve_task_names(" mvbench, vsibench ,mvbench") == ["mvbench", "vsibench"]
    with pytest.raises(ValueError, match="valid: all, vsibench, videommmu"):
        resolve_task_names("mvbench,videoqa")
    with pytest.raises(ValueError):
        resolve_task_names("")


def test_every_task_yaml_parses_with_both_protocols() -> None:
    for name in paper_task_names():
        spec = task_spec(name)
        assert spec.name == name and set(spec.benchmark.scoring) == {"video-r1", "official"}
        assert "official" in spec.sources and spec.breakdown
    assert "video-r1" not in task_spec("vcrbench").sources    # no Video-R1 file exists


def test_a_mapping_naming_an_unknown_transform_is_refused() -> None:
    from p2r_eval.benchmarks.formats.mapping import check_mapping

    mapping = dict(task_spec("videomme").sources["official"].record)
    check_mapping(mapping, "videomme.yaml")
    with pytest.raises(ValueError, match="unknown transform 'guess_answer'"):
        check_mapping({**mapping, "answer": {"fn": "guess_answer"}}, "videomme.yaml")
    with pytest.raises(ValueError, match="lacks \\['answer_type'\\]"):
        check_mapping({k: v for k, v in mapping.items() if k != "answer_type"}, "x.yaml")


# -- the demo suite -----------------------------------------------------------------------------


def test_demo_suite_covers_the_seven_benchmarks_in_their_real_formats(demo_root: Path) -> None:
    formats = {}
    answer_types, media_types = set(), set()
    for name in paper_task_names():
        loaded = load_task(name, demo_root)
        formats[name] = loaded.source_format
        assert 3 <= len(loaded.items) <= 6
        for item in loaded.items:
            assert item.media is not None and item.media.exists(), item
            answer_types.add(item.answer_type)
            media_types.add(item.media_type)
    assert formats == {"vsibench": "video-r1", "videommmu": "video-r1", "mmvu": "video-r1",
                       "vcrbench": "official", "mvbench": "video-r1", "tempcompass": "official",
                       "videomme": "video-r1"}
    assert answer_types == {"multiple choice", "regression", "numerical", "open-ended"}
    assert media_types == {"video", "frames"}


def test_demo_is_the_default_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2R_CACHE", str(tmp_path))
    loaded = load_task("mvbench")
    assert loaded.media_root == demo_data_root() == tmp_path / "demo" / demo_version()


def test_demo_preparation_is_idempotent_deterministic_and_concurrency_safe(
    tmp_path: Path, demo_root: Path
) -> None:
    with get_context("spawn").Pool(2) as pool:
        roots = pool.map(prepare_demo_data, [tmp_path, tmp_path])
    assert roots[0] == roots[1] == prepare_demo_data(tmp_path)
    root = Path(roots[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([root.name, f"{root.name}.lock"])
    video = Path("Evaluation/VideoMME/demoShort01.mp4")
    assert (root / video).read_bytes() == (demo_root / video).read_bytes()


def test_demo_prompts_are_video_r1s(demo_root: Path) -> None:
    item = load_task("vsibench", demo_root).items[2]
    assert build_prompt(item, "r1").startswith(
        item.question + "Options:\nA. left\nB. right\n\n" + R1_TEMPLATE_TAIL)
    vcr = load_task("vcrbench", demo_root).items[0]
    assert vcr.question == "Why does the square reach the right edge of the frame?"
    assert vcr.options[0] == "A. It moves to the right every frame."


# -- Video-R1 format: validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [("[{", "invalid JSON"),
     ('{"problem_id": 1}', "expected a JSON list of records"),
     (json.dumps([r1_record(1), 7]), "record #1: expected an object"),
     (json.dumps([r1_record(1, problem=None)]), "record #0 (problem_id 1), field 'problem'"),
     (json.dumps([{k: v for k, v in r1_record(1).items() if k != "path"}]),
      "field 'path': missing"),
     (json.dumps([r1_record(1, options="A. left")]), "field 'options': expected a list"),
     (json.dumps([r1_record(1), r1_record(1)]), "duplicate id '1'"),
     (json.dumps([r1_record(1, problem_type="yes/no")]), "unknown answer type 'yes/no'"),
     (json.dumps([r1_record(1, solution="B")]), "field 'solution': expected '<answer>"),
     (json.dumps([r1_record(1, data_type="audio")]), "unknown data type 'audio'"),
     (json.dumps([r1_record(True)]), "field 'problem_id'")],
)
def test_bad_annotations_are_refused_naming_file_record_and_field(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "eval_mvbench.json").write_text(content)
    with pytest.raises(AnnotationError, match="eval_mvbench.json") as error:
        load_task("mvbench", tmp_path)
    assert message in str(error.value)


def test_frame_records_name_the_folder_unless_the_video_exists(tmp_path: Path) -> None:
    path = "./Evaluation/MVBench/tvqa/frames_fps3_hq/clip_1.mp4"
    write_json(tmp_path / "eval_mvbench.json", [r1_record(1601, data_type="frame", path=path)])
    item = load_task("mvbench", tmp_path).items[0]
    assert (item.media_type, item.media) == ("frames", tmp_path / path.removesuffix(".mp4"))
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_bytes(b"x")
    item = load_task("mvbench", tmp_path).items[0]
    assert (item.media_type, item.media) == ("video", tmp_path / path)
    assert item.meta["task"] == "episodic_reasoning"


def test_paths_leaving_the_data_root_are_refused_per_item(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "Evaluation").mkdir(parents=True)
    (root / "Evaluation" / "link").symlink_to(outside, target_is_directory=True)
    paths = ["/etc/passwd", "./Evaluation/../../x.mp4", "Evaluation/link/v.mp4",
             "https://example.org/v.mp4", "", "./Evaluation/ok.mp4"]
    write_json(root / "eval_mvbench.json", [r1_record(i + 1, path=p) for i, p in enumerate(paths)])
    items = load_task("mvbench", root).items
    errors = [item.meta.get("media_error") for item in items]
    assert "absolute media path" in errors[0]
    assert "contains '..'" in errors[1]
    assert "escapes the data root" in errors[2]
    assert "URL" in errors[3] and "empty" in errors[4]
    assert errors[5] is None and items[5].media == root / "Evaluation" / "ok.mp4"
    assert all(item.media is None for item in items[:5])


def test_video_r1_file_wins_unless_a_format_is_asked_for(tmp_path: Path) -> None:
    write_json(tmp_path / "eval_mvbench.json", [r1_record(1)])
    write_json(tmp_path / "mvbench/json/action_antonym.json",
               [{"video": "a.webm", "question": "q?", "candidates": ["x", "y"], "answer": "y"}])
    assert load_task("mvbench", tmp_path).source_format == "video-r1"
    official = load_task("mvbench", tmp_path, source_format="official")
    assert official.source_format == "official"
    assert list(official.data_files) == ["mvbench/json/action_antonym.json"]
    assert len(official.data_files["mvbench/json/action_antonym.json"]) == 64


def test_missing_benchmark_names_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="eval_videomme.json or authors' format: "
                                                 "videomme/") as error:
        load_task("videomme", tmp_path)
    assert "P2R_HUB=0" in str(error.value)
    with pytest.raises(DataNotFoundError, match="not a folder"):
        load_task("videomme", tmp_path / "nope")
    with pytest.raises(DataNotFoundError, match="vcrbench has no video-r1 format"):
        load_task("vcrbench", tmp_path, source_format="video-r1")


@pytest.mark.slow
def test_hub_fallback_failure_is_a_clear_error(tmp_path: Path) -> None:
    """Offline, ``load_dataset`` fails at once: the error says where we looked, then the hub."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "P2R_HUB": "1",
           "HF_HOME": str(tmp_path / "hf")}
    code = ("from p2r_eval.benchmarks.registry import load_task, DataNotFoundError\n"
            f"try:\n    load_task('tempcompass', {str(tmp_path)!r})\n"
            "except DataNotFoundError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "tempcompass/ with one of questions/multi-choice.json" in out
    assert "hub:lmms-lab/TempCompass/multi-choice@test" in out


# -- the authors' formats -------------------------------------------------------------------------


def test_vsibench_release_parquet_and_saved_dataset(tmp_path: Path) -> None:
    import datasets

    records = [
        {"id": 1, "dataset": "arkitscenes", "scene_name": "41069025",
         "question_type": "object_counting", "question": "How many table(s)?",
         "options": None, "ground_truth": "4"},
        {"id": 2, "dataset": "scannet", "scene_name": "scene0011_00",
         "question_type": "object_rel_direction_hard", "question": "Which side?",
         "options": ["A. left", "B. right"], "ground_truth": "B"},
    ]
    write_parquet(tmp_path / "vsibench/test-00000-of-00001.parquet", records)
    items = load_task("vsibench", tmp_path).items
    assert [(i.answer_type, i.answer, i.options) for i in items] == [
        ("regression", "4", ()), ("multiple choice", "B", ("A. left", "B. right"))]
    assert items[0].media == tmp_path / "vsibench/arkitscenes/41069025.mp4"
    assert items[1].meta == {"question_type": "object_rel_direction_hard"}
    (tmp_path / "vsibench/test-00000-of-00001.parquet").unlink()
    datasets.Dataset.from_list(records).save_to_disk(str(tmp_path / "vsibench/hf"))
    loaded = load_task("vsibench", tmp_path)
    assert [i.id for i in loaded.items] == ["1", "2"] and list(loaded.data_files) == ["vsibench/hf"]


def test_videommmu_release_per_track(tmp_path: Path) -> None:
    for track, question_type, options, answer in [
        ("Perception", "multiple-choice", ["aldose", "ketose"], "B"),
        ("Adaptation", "open", [], "12.97"),
    ]:
        write_parquet(tmp_path / f"videommmu/{track}/test-00000-of-00001.parquet", [
            {"id": "validation_Chemistry_13", "question": "q?", "options": options,
             "answer": answer, "question_type": question_type}])
    items = {i.id: i for i in load_task("videommmu", tmp_path).items}
    perception, adaptation = items["Perception/validation_Chemistry_13"], items[
        "Adaptation/validation_Chemistry_13"]
    assert perception.options == ("A. aldose", "B. ketose")
    assert perception.meta == {"track": "Perception", "subject": "Chemistry",
                               "question_type": "multiple-choice"}
    assert (adaptation.answer_type, adaptation.answer) == ("numerical", "12.97")
    assert perception.media == tmp_path / "videommmu/Science/validation_Chemistry_13.mp4"


def test_mmvu_release(tmp_path: Path) -> None:
    url = "https://huggingface.co/datasets/yale-nlp/MMVU/resolve/main/videos/{}/0.mp4"
    write_json(tmp_path / "mmvu/validation.json", [
        {"id": "validation_0", "video": url.format("Art"), "question_type": "open-ended",
         "metadata": {"subject": "Art"}, "question": "Which technique?",
         "choices": {"A": "", "B": "", "C": "", "D": "", "E": ""}, "answer": "Dolly Zoom"},
        {"id": "validation_1", "video": url.format("Chemistry"),
         "question_type": "multiple-choice", "metadata": {"subject": "Chemistry"},
         "question": "How many grams?", "answer": "A",
         "choices": {"A": "10.0", "B": "5.0", "C": "12.0", "D": "15.0", "E": "20.0"}},
    ])
    open_item, choice = load_task("mmvu", tmp_path).items
    assert (open_item.answer_type, open_item.options) == ("open-ended", ())
    assert choice.options == ("A. 10.0", "B. 5.0", "C. 12.0", "D. 15.0", "E. 20.0")
    assert choice.media == tmp_path / "mmvu/videos/Chemistry/0.mp4"
    assert choice.meta == {"subject": "Chemistry"}


def test_mvbench_release(tmp_path: Path) -> None:
    write_json(tmp_path / "mvbench/json/action_antonym.json", [
        {"video": "166583.webm", "question": "What is the action?",
         "candidates": ["Not sure", "Scattering something down", "Piling something up"],
         "answer": "Piling something up"}])
    write_json(tmp_path / "mvbench/json/episodic_reasoning.json", [
        {"video": "castle_s07e04_seg02_clip_14", "question": "Why?", "start": 0.0, "end": 38.32,
         "candidates": ["To get her to trust him", "He lost a bet"],
         "answer": "To get her to trust him"}])
    antonym, episodic = load_task("mvbench", tmp_path).items
    assert (antonym.id, antonym.answer, antonym.options[2]) == (
        "action_antonym/0", "C", "C. Piling something up")
    assert antonym.media == tmp_path / "mvbench/video/ssv2_video/166583.webm"
    assert episodic.media_type == "frames"
    clip = "mvbench/video/tvqa/frames_fps3_hq/castle_s07e04_seg02_clip_14"
    assert episodic.media == tmp_path / clip
    assert episodic.meta == {"task": "episodic_reasoning", "start": 0.0, "end": 38.32}


def test_mvbench_release_answer_must_be_a_candidate(tmp_path: Path) -> None:
    write_json(tmp_path / "mvbench/json/action_count.json", [
        {"video": "v.mp4", "question": "How many?", "candidates": ["1", "2"], "answer": "3"}])
    with pytest.raises(AnnotationError, match="action_count.json, record #0, field 'answer'"):
        load_task("mvbench", tmp_path)


def test_tempcompass_release_flat_parquet(tmp_path: Path) -> None:
    write_parquet(tmp_path / "tempcompass/multi-choice/test-00000-of-00001.parquet", [
        {"video_id": "1034419625", "dim": "action", "answer": "C. dunking a basketball",
         "question": "Which activity?\nA. passing a basketball\nB. dribbling a basketball\n"
                     "C. dunking a basketball"}])
    item = load_task("tempcompass", tmp_path).items[0]
    assert (item.question, item.answer) == ("Which activity?", "C")
    assert item.options == ("A. passing a basketball", "B. dribbling a basketball",
                            "C. dunking a basketball")
    assert item.media == tmp_path / "tempcompass/videos/1034419625.mp4"


def test_videomme_release_jsonl(tmp_path: Path) -> None:
    record = {"video_id": "001", "duration": "short", "domain": "Knowledge",
              "sub_category": "Humanity & History", "url": "u", "videoID": "fFjv93ACGo8",
              "question_id": "001-1", "task_type": "Counting Problem", "question": "Which?",
              "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. Same."], "answer": "C"}
    path = tmp_path / "videomme/test.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record) + "\n\n")
    item = load_task("videomme", tmp_path).items[0]
    assert (item.id, item.answer, item.solution) == ("001-1", "C", "<answer>C</answer>")
    assert item.media == tmp_path / "videomme/data/fFjv93ACGo8.mp4"
    path.write_text(json.dumps(record) + "\n{broken\n")
    with pytest.raises(AnnotationError, match="test.jsonl, record line 2: invalid JSON"):
        load_task("videomme", tmp_path)


def test_every_answer_type_the_video_r1_format_allows_loads(tmp_path: Path) -> None:
    types = [t for t in ANSWER_TYPES if t != "open-ended"]
    write_json(tmp_path / "eval_videomme.json", [
        r1_record(i + 1, problem_type=t, options=None if t != "multiple choice" else ["A. x"],
                  duration="short", domain="d", sub_category="s", task_type="t")
        for i, t in enumerate(types)])
    assert [i.answer_type for i in load_task("videomme", tmp_path).items] == types
