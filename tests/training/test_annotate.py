"""The CoT annotation pipeline (``p2r-train annotate``).

Step 2 is tested per problem type with hand-computed metric values and per template
deviation. End to end, a replay teacher (outputs written here, through the same code path as
a model) and the fake Messages API judge of ``tests/judge_server.py`` exercise every way an
item can be kept, dropped or fail; the summary must count exactly the records written. A run
killed with SIGKILL and resumed must write the same bytes as an uninterrupted one, with no
item generated or judged twice. The demo model runs as teacher on real decoded media.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from killing import run_and_kill
from p2r_train.cot.annotate import add_subcommand, dry_run_report, settings_from_args
from p2r_train.cot.pipeline import check_resumable, check_teacher_fingerprint
from p2r_train.cot.records import (
    AnnotateInputError,
    UnsafeMediaPathError,
    VQARecord,
    load_vqa_records,
    record_item,
    record_problem,
    resolve_media_path,
)
from p2r_train.cot.steps import (
    DEFAULT_MIN_SCORES,
    TEACHER_PROMPT_VERSION,
    parse_min_scores,
    verify_output,
)
from p2r_train.cot.store import AnnotationStore

from p2r_eval.eval.runstore import RunStoreError
from p2r_eval.judge.usage import price_per_mtok
from p2r_eval.media.requests import MediaError, RequestBuilder
from p2r_eval.media.synthetic_media import write_frame_folder, write_image, write_video
from p2r_eval.media.video import FramePolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_server import FakeJudgeServer, judge_reply, word_count

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"
JUDGE_MODEL = "claude-haiku-4-5"  # a model with a list price, so the cost is checked too
MC_OPTIONS = ["A. a red ball", "B. a blue cube"]


def trace(observation: str, think: str, answer: str) -> str:
    return (f"<observation>{observation}</observation>\n<think>{think}</think>\n"
            f"<answer>{answer}</answer>")


# -- step 2: verification, one problem type at a time ---------------------------------------
@pytest.mark.parametrize(
    ("problem_type", "answer", "truth", "score", "status"),
    [
        ("multiple choice", "A", "A", 1.0, "kept"),
        ("multiple choice", "A. a red ball", "A", 0.0, "dropped"),  # exact match only
        ("numerical", "12.974", "12.97", 1.0, "kept"),  # equal after rounding to 2 decimals
        ("numerical", "4", "4.0", 0.0, "dropped"),  # only one side has a decimal mark
        ("regression", "9", "10", 0.9, "kept"),  # 1 - |9 - 10| / 10, threshold 0.9
        ("regression", "8", "10", 0.8, "dropped"),  # 1 - 2 / 10
        ("OCR", "the cat sat on mat", "the cat sat on the mat", 5 / 6, "kept"),  # WER 1/6
        ("OCR", "the cat sat", "the cat sat down", 0.75, "dropped"),  # WER 1/4 > 0.2
        # ROUGE F1 of "red ball" vs "a red ball": R1 = R-L = 2*1*(2/3)/(1+2/3) = 0.8,
        # R2 = 2*1*(1/2)/(1+1/2) = 2/3; mean (0.8 + 2/3 + 0.8) / 3.
        ("free-form", "red ball", "a red ball", (0.8 + 2 / 3 + 0.8) / 3, "kept"),
        ("free-form", "blue cube", "a red ball", 0.0, "dropped"),
    ],
)
def test_verification_scores_each_problem_type(
    problem_type: str, answer: str, truth: str, score: float, status: str
) -> None:
    output = trace("A red ball on a table.", "It is red.", answer)
    result = verify_output(output, problem_type, f"<answer>{truth}</answer>", DEFAULT_MIN_SCORES)
    assert result.score == pytest.approx(score, abs=1e-9)
    assert result.status == status
    assert result.reason == (None if status == "kept" else "wrong_answer")
    assert result.deviations == []
    assert (result.prediction, result.truth) == (answer, truth)
    assert result.threshold == DEFAULT_MIN_SCORES[problem_type]


def test_threshold_is_configurable() -> None:
    output = trace("A sign.", "Reading it.", "the cat sat")
    strict = verify_output(output, "OCR", "<answer>the cat sat down</answer>", DEFAULT_MIN_SCORES)
    lenient = verify_output(output, "OCR", "<answer>the cat sat down</answer>",
                            parse_min_scores(["OCR=0.75"]))
    assert (strict.status, lenient.status) == ("dropped", "kept")


@pytest.mark.parametrize(
    ("output", "deviations"),
    [
        ("<think>t</think><answer>A</answer>", ["missing:observation"]),
        ("<observation>o</observation><answer>A</answer>", ["missing:think"]),
        ("<observation>o</observation><think>t</think>", ["missing:answer"]),
        ("<observation>o</observation><think>a</think><think>b</think><answer>A</answer>",
         ["duplicate:think"]),
        ("<think>t</think><observation>o</observation><answer>A</answer>", ["misordered"]),
        ("<observation> </observation><think>t</think><answer>A</answer>", ["empty:observation"]),
        ("<observation>o</observation><think>t</think><answer></answer>", ["empty:answer"]),
        ("Sure! <observation>o</observation><think>t</think><answer>A</answer>",
         ["outside_text"]),
        ("<observation>o</observation><think>t</think><answer>A</answer> Hope this helps.",
         ["outside_text"]),
        ("<observation>o</observation><think>t</think><answer>A", ["missing:answer",
                                                                   "unclosed:answer"]),
    ],
)
def test_template_deviations_are_dropped_with_their_reason(
    output: str, deviations: list[str]
) -> None:
    result = verify_output(output, "multiple choice", "<answer>A</answer>", DEFAULT_MIN_SCORES)
    assert result.status == "dropped"
    assert result.reason == "template_deviation"
    assert result.deviations == deviations


def test_min_scores_parse_over_the_defaults_and_refuse_nonsense() -> None:
    parsed = parse_min_scores(["multiple choice=1.0,OCR=0.7", "free-form=0.25"])
    assert parsed == {**DEFAULT_MIN_SCORES, "OCR": 0.7, "free-form": 0.25}
    with pytest.raises(ValueError, match="TYPE=VALUE"):
        parse_min_scores(["essay=0.5"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parse_min_scores(["OCR=1.5"])
    with pytest.raises(ValueError, match="not a number"):
        parse_min_scores(["OCR=high"])


# -- input records and media paths ------------------------------------------------------------
def test_records_load_from_json_and_jsonl_with_clear_errors(tmp_path: Path) -> None:
    records = [{"problem_id": 1, "problem": "q"}, {"problem_id": "b", "problem": "r"}]
    (tmp_path / "a.json").write_text(json.dumps(records))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    for name in ("a.json", "a.jsonl"):
        loaded = load_vqa_records(tmp_path / name)
        assert [(r.id, r.position) for r in loaded] == [("1", 0), ("b", 1)]
        assert loaded[0].fields == records[0]
    (tmp_path / "dup.jsonl").write_text('{"problem_id": 1}\n{"problem_id": "1"}\n')
    with pytest.raises(AnnotateInputError, match=r"dup.jsonl, line 2: problem_id '1' was already"):
        load_vqa_records(tmp_path / "dup.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"problem_id": 1}\n{"problem_id": 2\n')
    with pytest.raises(AnnotateInputError, match="bad.jsonl, line 2: not valid JSON"):
        load_vqa_records(tmp_path / "bad.jsonl")
    (tmp_path / "noid.json").write_text('[{"problem": "q"}]')
    with pytest.raises(AnnotateInputError, match="record 0: problem_id must be"):
        load_vqa_records(tmp_path / "noid.json")


def test_record_problems_name_the_field() -> None:
    good = {"problem": "q", "data_type": "video", "problem_type": "multiple choice",
            "options": MC_OPTIONS, "solution": "<answer>A</answer>", "path": "v.mp4"}
    assert record_problem(good) is None
    assert "problem_type 'essay'" in record_problem({**good, "problem_type": "essay"})
    assert "data_type 'audio'" in record_problem({**good, "data_type": "audio"})
    assert "needs options" in record_problem({**good, "options": None})
    assert "<answer>" in record_problem({**good, "solution": "A"})
    assert "'path'" in record_problem({**good, "path": ""})


def test_media_paths_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "v.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    (root / "escape.mp4").symlink_to(tmp_path / "secret.mp4")
    (root / "inside.mp4").symlink_to(root / "sub" / "v.mp4")
    assert resolve_media_path(root, "./sub/v.mp4") == root / "sub" / "v.mp4"
    assert resolve_media_path(root, "inside.mp4") == root / "inside.mp4"
    assert resolve_media_path(root, "not/there.mp4") == root / "not" / "there.mp4"
    for unsafe in ("/etc/passwd", "../secret.mp4", "sub/../../secret.mp4", "escape.mp4",
                   "C:\\videos\\v.mp4", "https://example.com/v.mp4"):
        with pytest.raises(UnsafeMediaPathError):
            resolve_media_path(root, unsafe)


def test_a_run_with_other_settings_is_refused(tmp_path: Path) -> None:
    previous = {"identity": {"teacher": "demo", "min_scores": {"OCR": 0.8}}}
    check_resumable(previous, {"teacher": "demo", "min_scores": {"OCR": 0.8}}, tmp_path)
    with pytest.raises(RunStoreError, match="different min_scores"):
        check_resumable(previous, {"teacher": "demo", "min_scores": {"OCR": 0.7}}, tmp_path)


def test_a_changed_teacher_checkpoint_is_refused_but_another_device_is_not(
    tmp_path: Path,
) -> None:
    recorded = {"backend": "hf", "weights_sha256": "aa", "device": "cuda", "dtype": "bfloat16"}
    check_teacher_fingerprint(None, recorded, tmp_path)
    check_teacher_fingerprint(recorded, {**recorded, "device": "cuda:1"}, tmp_path)
    with pytest.raises(RunStoreError, match="weights_sha256"):
        check_teacher_fingerprint(recorded, {**recorded, "weights_sha256": "bb"}, tmp_path)


def test_a_frame_record_is_read_at_the_given_rate_and_fails_naming_it_without_one(
    tmp_path: Path,
) -> None:
    write_frame_folder(tmp_path / "clip", 6)
    fields = {"problem_id": "f1", "problem": "Q?", "data_type": "frame", "path": "clip.mp4",
              "problem_type": "numerical", "solution": "<answer>2</answer>"}
    vqa = VQARecord("f1", 0, fields)
    builder = RequestBuilder("p2r", FramePolicy(num_frames=6))
    assert builder(record_item(vqa, tmp_path / "clip.mp4", 2.0)).fps == pytest.approx(2.0)
    with pytest.raises(MediaError, match=r"annotate/f1: .*frame_folder_fps"):
        builder(record_item(vqa, tmp_path / "clip.mp4"))


# -- end to end -------------------------------------------------------------------------------
def record(problem_id: str, problem_type: str, data_type: str, path: str, answer: str,
           options: list[str] | None = None) -> dict:
    return {"problem_id": problem_id, "problem": f"Question {problem_id}?",
            "data_type": data_type, "problem_type": problem_type, "options": options,
            "process": "", "solution": f"<answer>{answer}</answer>", "path": path,
            "data_source": "synthetic"}


KEPT = {"mc-kept", "num-kept", "ocr-kept", "free-kept", "regression-kept", "frames-kept"}
EXPECTED_OUTCOMES = {
    **{item: ("kept", None, None) for item in KEPT},
    "mc-wrong": ("dropped", "verify", "wrong_answer"),
    "no-observation": ("dropped", "verify", "template_deviation"),
    "outside-text": ("dropped", "verify", "template_deviation"),
    "insufficient": ("dropped", "judge", "insufficient_observation"),
    "garbled": ("failed", "judge", "judge_no_verdict"),
    "corrupt-video": ("failed", "generate", "media_error"),
    "missing-video": ("failed", "generate", "media_error"),
    "escape": ("failed", "generate", "unsafe_media_path"),
    "symlink-escape": ("failed", "generate", "unsafe_media_path"),
    "invalid": ("failed", "generate", "invalid_record"),
    "no-replay": ("failed", "generate", "teacher_error"),
}
JUDGED = KEPT | {"insufficient", "garbled"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Input records, media and replayed teacher outputs covering every outcome."""
    base = tmp_path_factory.mktemp("annotate-data")
    media = base / "media"
    write_video(media / "clip.mp4", seconds=1, fps=8)
    write_image(media / "images" / "shelf.png")
    write_frame_folder(media / "frames" / "clip", 6)  # named frames/clip.mp4, as Video-R1 does
    (media / "corrupt.mp4").write_bytes(b"this is not a video" * 20)
    write_video(base / "outside.mp4", seconds=1, fps=8)
    (media / "link.mp4").symlink_to(base / "outside.mp4")
    records = [
        record("mc-kept", "multiple choice", "video", "./clip.mp4", "A", MC_OPTIONS),
        record("num-kept", "numerical", "image", "./images/shelf.png", "3"),
        record("mc-wrong", "multiple choice", "video", "./clip.mp4", "A", MC_OPTIONS),
        record("no-observation", "multiple choice", "video", "./clip.mp4", "A", MC_OPTIONS),
        record("corrupt-video", "multiple choice", "video", "./corrupt.mp4", "A", MC_OPTIONS),
        record("ocr-kept", "OCR", "image", "./images/shelf.png", "open daily"),
        record("escape", "multiple choice", "video", "../outside.mp4", "A", MC_OPTIONS),
        record("insufficient", "multiple choice", "video", "./clip.mp4", "A", MC_OPTIONS),
        record("free-kept", "free-form", "video", "./clip.mp4", "a red ball"),
        record("missing-video", "numerical", "video", "./nowhere.mp4", "2"),
        record("outside-text", "multiple choice", "video", "./clip.mp4", "A", MC_OPTIONS),
        record("garbled", "multiple choice", "video", "./clip.mp4", "A", MC_OPTIONS),
        record("invalid", "essay", "video", "./clip.mp4", "A"),
        record("regression-kept", "regression", "video", "./clip.mp4", "10"),
        record("symlink-escape", "multiple choice", "video", "./link.mp4", "A", MC_OPTIONS),
        record("no-replay", "multiple choice", "video", "./clip.mp4", "A", MC_OPTIONS),
        record("frames-kept", "multiple choice", "frame", "./frames/clip.mp4", "B", MC_OPTIONS),
    ]
    outputs = {
        "mc-kept": trace("A red ball rolls across a wooden table.", "The ball is red.", "A"),
        "num-kept": trace("There are 3 cups on the shelf.", "Counting gives three.", "3"),
        "mc-wrong": trace("A red ball rolls across a table.", "Maybe a cube.", "B"),
        "no-observation": "<think>The ball is red.</think><answer>A</answer>",
        "corrupt-video": trace("A red ball.", "Red.", "A"),
        "ocr-kept": trace("A sign on the door reads OPEN DAILY.", "The text is clear.",
                          "open daily"),
        "escape": trace("A red ball.", "Red.", "A"),
        "insufficient": trace("Something moves in the room.", "It must be the ball.", "A"),
        "free-kept": trace("A red ball rolls across the floor.", "It is a ball.", "red ball"),
        "missing-video": trace("Two birds.", "Two.", "2"),
        "outside-text": "Sure! " + trace("A red ball.", "Red.", "A"),
        "garbled": trace("A red ball [[garble]].", "Red.", "A"),
        "invalid": trace("A red ball.", "Red.", "A"),
        "regression-kept": trace("A table next to a wall 10 meters long.", "About 9.", "9"),
        "symlink-escape": trace("A red ball.", "Red.", "A"),
        "frames-kept": trace("A blue cube stands on the floor.", "It is a cube.", "B"),
    }
    (base / "records.json").write_text(json.dumps(records, indent=1))
    replay_lines = [json.dumps({"task": "annotate", "id": i, "output": o})
                    for i, o in outputs.items()]
    (base / "teacher.jsonl").write_text("\n".join(replay_lines) + "\n")
    return {"input": base / "records.json", "media": media, "replay": base / "teacher.jsonl"}


def annotate_args(dataset: dict[str, Path], output: Path, server: FakeJudgeServer,
                  *extra: str) -> list[str]:
    return ["--input", str(dataset["input"]), "--media-root", str(dataset["media"]),
            "--output", str(output), "--teacher", f"replay:{dataset['replay']}",
            "--frames", "4", "--judge", "anthropic", "--judge-base-url", server.url,
            "--judge-model", JUDGE_MODEL, "--frame-folder-fps", "3", "--quiet", *extra]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="p2r-train")
    add_subcommand(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["annotate", *argv])
    return args.func(args)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def step_ids(output: Path, name: str) -> list[str]:
    path = output / "steps" / name
    return [entry["id"] for entry in read_jsonl(path)] if path.exists() else []


def check_summary_matches_files(output: Path) -> dict:
    """The summary's counts equal what cot.jsonl and dropped.jsonl hold, reason by reason."""
    summary = json.loads((output / "summary.json").read_text())
    kept, dropped = read_jsonl(output / "cot.jsonl"), read_jsonl(output / "dropped.jsonl")
    assert summary["kept"] == len(kept) == summary["files"]["cot.jsonl"]
    assert summary["dropped"] + summary["failed"] == len(dropped) == summary["files"][
        "dropped.jsonl"]
    assert summary["items_in"] == len(kept) + len(dropped) + summary["pending"]
    from_files = Counter((r["step"], r["status"], r["reason"]) for r in dropped)
    from_summary = Counter({(step, status, reason): count
                            for step, counts in summary["steps"].items()
                            for status in ("dropped", "failed")
                            for reason, count in counts[status].items()})
    assert from_files == from_summary
    by_type = Counter(r["problem_type"] for r in kept + dropped)
    assert +Counter({t: row["in"] - row["pending"]
                     for t, row in summary["by_problem_type"].items()}) == by_type
    assert sum(row["kept"] for row in summary["by_problem_type"].values()) == len(kept)
    return summary


def test_end_to_end_every_outcome_is_counted(
    dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    output = tmp_path / "out"
    with FakeJudgeServer() as server:
        assert run_cli(annotate_args(dataset, output, server, "--judge-concurrency", "2")) == 0
        printed = capsys.readouterr().out
        summary = check_summary_matches_files(output)
        kept, dropped = read_jsonl(output / "cot.jsonl"), read_jsonl(output / "dropped.jsonl")
        outcomes = {r["problem_id"]: ("kept", None, None) for r in kept}
        outcomes |= {r["problem_id"]: (r["status"], r["step"], r["reason"]) for r in dropped}
        assert outcomes == EXPECTED_OUTCOMES
        assert (summary["kept"], summary["dropped"], summary["failed"]) == (6, 4, 7)
        assert summary["steps"]["verify"] == {
            "in": 11, "passed": 8, "dropped": {"template_deviation": 2, "wrong_answer": 1},
            "failed": {}, "pending": 0}
        assert summary["deviations"] == {"missing:observation": 1, "outside_text": 1}
        # One judge call per item that reached step 3, and the usage adds up to the server's.
        assert server.model_calls() == len(JUDGED)
        usage = summary["judge_usage"]
        replies = [judge_reply(p) for p in server.prompts]
        assert usage["input_tokens"] == sum(word_count(p) for p in server.prompts)
        assert usage["output_tokens"] == sum(word_count(r) for r in replies)
        price_in, price_out = price_per_mtok(JUDGE_MODEL)
        assert usage["estimated_cost_usd"] == pytest.approx(
            (usage["input_tokens"] * price_in + usage["output_tokens"] * price_out) / 1e6)
        assert (usage["verdicts"], usage["live"], usage["cached"]) == (8, 8, 0)
        assert (usage["no_verdict"], usage["errors"]) == (1, 0)
        assert "items in 17: kept 6, dropped 4, failed 7, pending 0" in printed
        assert "insufficient_observation" in printed

        # The release format: input fields, the trace split up, the pipeline metadata.
        first = kept[0]
        source = json.loads(dataset["input"].read_text())[0]
        assert {k: first[k] for k in source if k != "process"} == {
            k: v for k, v in source.items() if k != "process"}
        assert first["observation"] == "A red ball rolls across a wooden table."
        assert first["process"] == "The ball is red."
        assert first["answer"] == "A" and first["select"] is True and first["reward"] == 1.0
        assert first["output"].startswith("<observation>")
        assert first["verdicts"]["judge"]["sufficient"] is True
        assert first["teacher_model"] == f"replay:{dataset['replay']}"
        assert first["judge_model"] == JUDGE_MODEL
        assert first["prompt_versions"]["teacher"] == TEACHER_PROMPT_VERSION
        assert first["prompt_versions"]["judge"].startswith("sufficiency-")
        assert all(r["select"] is False and r["detail"] for r in dropped
                   if r["status"] == "failed")

        # Running again does nothing new and rewrites the same bytes.
        before = {n: (output / n).read_bytes() for n in ("cot.jsonl", "dropped.jsonl")}
        assert run_cli(annotate_args(dataset, output, server)) == 0
        assert server.model_calls() == len(JUDGED)
        assert {n: (output / n).read_bytes() for n in before} == before
        for name in ("generated.jsonl", "verified.jsonl", "judged.jsonl"):
            ids = step_ids(output, name)
            assert len(ids) == len(set(ids)), name


def test_a_second_process_on_the_same_folder_is_refused(
    dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    output = tmp_path / "out"
    with FakeJudgeServer() as server, AnnotationStore(output).exclusive():
        assert run_cli(annotate_args(dataset, output, server)) == 2
        assert server.model_calls() == 0
    assert "another p2r run is writing" in capsys.readouterr().err
    assert not (output / "steps").exists()


def test_judge_errors_after_retries_are_item_failures_and_can_be_retried(
    dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    output = tmp_path / "out"
    first_two = ["--limit", "2", "--judge-concurrency", "1", "--judge-max-retries", "0"]
    with FakeJudgeServer(faults=["500"]) as server:
        assert run_cli(annotate_args(dataset, output, server, *first_two)) == 0
        dropped = read_jsonl(output / "dropped.jsonl")
        assert [(r["problem_id"], r["reason"]) for r in dropped] == [("mc-kept", "judge_error")]
        assert "500" in dropped[0]["detail"] or "api_error" in dropped[0]["detail"]
        assert check_summary_matches_files(output)["judge_usage"]["errors"] == 1
        assert server.model_calls() == 2
        assert run_cli(annotate_args(dataset, output, server, *first_two,
                                     "--retry-errors")) == 0
        assert server.model_calls() == 3  # only the failed item was judged again
        assert [r["problem_id"] for r in read_jsonl(output / "cot.jsonl")] == [
            "mc-kept", "num-kept"]
        assert read_jsonl(output / "dropped.jsonl") == []


def test_a_torn_last_line_is_repaired_on_resume(
    dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    output = tmp_path / "out"
    with FakeJudgeServer() as server:
        assert run_cli(annotate_args(dataset, output, server, "--limit", "4")) == 0
        before = (output / "cot.jsonl").read_bytes(), (output / "dropped.jsonl").read_bytes()
        judged = output / "steps" / "judged.jsonl"
        intact = judged.read_bytes()
        with judged.open("ab") as handle:
            handle.write(b'{"id": "mc-wrong", "status": "ke')
        assert run_cli(annotate_args(dataset, output, server, "--limit", "4")) == 0
        assert judged.read_bytes() == intact
        assert ((output / "cot.jsonl").read_bytes(),
                (output / "dropped.jsonl").read_bytes()) == before


def test_shards_merge_into_the_same_output_as_one_run(
    dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeJudgeServer() as server:
        single, sharded = tmp_path / "single", tmp_path / "sharded"
        assert run_cli(annotate_args(dataset, single, server)) == 0
        assert run_cli(annotate_args(dataset, sharded, server, "--shard", "0/2")) == 0
        assert not (sharded / "cot.jsonl").exists()  # shard 1 has not run yet
        assert run_cli(annotate_args(dataset, sharded, server, "--shard", "1/2")) == 0
    for name in ("cot.jsonl", "dropped.jsonl"):
        assert (sharded / name).read_bytes() == (single / name).read_bytes()
    merged = check_summary_matches_files(sharded)
    alone = json.loads((single / "summary.json").read_text())
    for key in ("kept", "dropped", "failed", "steps", "by_problem_type", "deviations"):
        assert merged[key] == alone[key]
    assert json.loads((sharded / "shards" / "0-of-2" / "summary.json").read_text())[
        "items_in"] == 9


def test_steps_can_stop_early_and_finish_later(
    dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Generate on one machine (--stop-after generate), verify and judge later."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    output, reference = tmp_path / "out", tmp_path / "reference"
    with FakeJudgeServer() as server:
        assert run_cli(annotate_args(dataset, output, server, "--stop-after", "generate")) == 0
        summary = check_summary_matches_files(output)
        assert server.model_calls() == 0
        assert (summary["kept"], summary["pending"], summary["complete"]) == (0, 11, False)
        assert summary["steps"]["verify"]["pending"] == 11
        assert run_cli(annotate_args(dataset, output, server)) == 0
        assert server.model_calls() == len(JUDGED)
        assert run_cli(annotate_args(dataset, reference, server)) == 0
    for name in ("cot.jsonl", "dropped.jsonl"):
        assert (output / name).read_bytes() == (reference / name).read_bytes()


def test_dry_run_loads_nothing_and_writes_nothing(
    dataset: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "out"
    with FakeJudgeServer() as server:
        assert run_cli(annotate_args(dataset, output, server, "--dry-run")) == 0
        assert server.model_calls() == 0
    printed = capsys.readouterr().out
    assert "records selected: 17" in printed
    assert "1 invalid records, 2 unsafe media paths, 1 missing media files" in printed
    assert "Question mc-kept?Options:\nA. a red ball\nB. a blue cube\n" in printed
    assert not output.exists()
    args = argparse.Namespace(**{**vars(_parsed(annotate_args(dataset, output, server))),
                                 "limit": 3})
    assert "records selected: 3" in dry_run_report(settings_from_args(args))


def _parsed(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="p2r-train")
    add_subcommand(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["annotate", *argv])


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_output(
    dataset: dict[str, Path], tmp_path: Path
) -> None:
    """SIGKILL in the middle (judge calls slowed down so that the kill lands mid-run), resume,
    and compare with an uninterrupted run: same bytes, no item generated or judged twice."""
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "p2r_train.cot.annotate"]
    uninterrupted, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
    with FakeJudgeServer() as server:
        subprocess.run([*command, *annotate_args(dataset, uninterrupted, server)],
                       env=env, cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
        assert server.model_calls() == len(JUDGED)
    with FakeJudgeServer(faults=["timeout"] * 100, slow_reply_s=0.5) as server:
        args = annotate_args(dataset, resumed, server, "--judge-concurrency", "1",
                             "--judge-timeout", "60")
        run_and_kill([*command, *args], lambda: len(step_ids(resumed, "judged.jsonl")) >= 2,
                     env=env, cwd=REPO_ROOT, timeout_s=120, poll_s=0.05)
        judged_before = set(step_ids(resumed, "judged.jsonl"))
        assert 2 <= len(judged_before) < len(JUDGED)
        assert not (resumed / "cot.jsonl").exists()
        generated_before = step_ids(resumed, "generated.jsonl")
        assert len(generated_before) < len(EXPECTED_OUTCOMES)

        subprocess.run([*command, *args], env=env, cwd=REPO_ROOT, check=True,
                       capture_output=True, timeout=300)
        for name in ("cot.jsonl", "dropped.jsonl"):
            assert (resumed / name).read_bytes() == (uninterrupted / name).read_bytes()
        for name in ("generated.jsonl", "verified.jsonl", "judged.jsonl"):
            ids = step_ids(resumed, name)
            assert len(ids) == len(set(ids)), f"an item appears twice in {name}"
        # Items whose verdict was stored before the kill were never sent to the judge again;
        # at most the one call in flight at the kill was repeated.
        observations = {r["problem_id"]: r["observation"]
                        for r in read_jsonl(resumed / "cot.jsonl")}
        for item in judged_before & set(observations):
            assert sum(observations[item] in p for p in server.prompts) == 1
        assert len(JUDGED) <= server.model_calls() <= len(JUDGED) + 1
    summaries = [check_summary_matches_files(folder) for folder in (uninterrupted, resumed)]
    for key in ("items_in", "kept", "dropped", "failed", "steps", "by_problem_type"):
        assert summaries[0][key] == summaries[1][key]


@pytest.mark.slow
def test_demo_model_as_teacher_on_real_media(
    dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hf path: the tiny demo Qwen2.5-VL reads decoded video and image; its toy-style text
    is dropped at step 2 (or, when well formed and right, goes on), and the counts add up."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("P2R_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "out"
    with FakeJudgeServer() as server:
        argv = annotate_args(dataset, output, server, "--limit", "2", "--max-new-tokens", "16",
                             "--max-pixels", str(56 * 56), "--batch-size", "2",
                             "--device", "cpu")
        argv[argv.index("--teacher") + 1] = "demo"
        assert run_cli(argv) == 0
    generated = read_jsonl(output / "steps" / "generated.jsonl")
    assert [(e["id"], e["status"]) for e in generated] == [("mc-kept", "ok"), ("num-kept", "ok")]
    assert all(isinstance(e["output"], str) and e["output"] for e in generated)
    run = json.loads((output / "run.json").read_text())
    assert run["teacher"]["fingerprint"]["backend"] == "hf"
    assert run["teacher"]["fingerprint"]["model_class"] == "Qwen2_5_VLForConditionalGeneration"
    summary = check_summary_matches_files(output)
    assert summary["items_in"] == 2 and summary["pending"] == 0


# -- --judge-batch: step 3 as one Message Batch -----------------------------------------------


def outcomes_of(output: Path) -> dict:
    kept, dropped = read_jsonl(output / "cot.jsonl"), read_jsonl(output / "dropped.jsonl")
    found = {r["problem_id"]: ("kept", None, None) for r in kept}
    return found | {r["problem_id"]: (r["status"], r["step"], r["reason"]) for r in dropped}


def test_judge_batch_gives_the_live_outcomes_through_one_message_batch(
    dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    output = tmp_path / "out"
    with FakeJudgeServer(batch_polls_until_ended=2) as server:
        assert run_cli(annotate_args(dataset, output, server, "--judge-batch",
                                     "--judge-batch-poll", "0.01")) == 0
        assert server.calls["messages"] == 0
        (batch,) = server.batches.values()
    assert outcomes_of(output) == EXPECTED_OUTCOMES
    assert len(batch["requests"]) == sum(1 for _, step, _ in EXPECTED_OUTCOMES.values()
                                         if step in (None, "judge"))
    check_summary_matches_files(output)


def test_a_run_interrupted_while_its_batch_runs_collects_it_instead_of_paying_twice(
    dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import p2r_train.cot.pipeline as pipeline

    import p2r_eval.judge as judge_package  # the pipeline imports the batch API from it

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    output = tmp_path / "out"
    real_wait = judge_package.wait_for_batch

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with FakeJudgeServer(batch_polls_until_ended=2) as server:
        monkeypatch.setattr(judge_package, "wait_for_batch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_cli(annotate_args(dataset, output, server, "--judge-batch"))
        assert (output / pipeline.PENDING_BATCH_FILE).exists()
        monkeypatch.setattr(judge_package, "wait_for_batch", real_wait)
        assert run_cli(annotate_args(dataset, output, server, "--judge-batch",
                                     "--judge-batch-poll", "0.01")) == 0
        assert len(server.batches) == 1 and server.calls["messages"] == 0
    assert not (output / pipeline.PENDING_BATCH_FILE).exists()
    assert outcomes_of(output) == EXPECTED_OUTCOMES
