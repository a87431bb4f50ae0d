"""Bad annotation files and unsafe media paths.

Bad annotation files (invalid JSON, missing or mistyped fields, duplicate ids, unknown problem
types), in Video-R1's format and in the authors' formats: ``p2r-eval`` stops with exit 2 and
one error naming the file, the record and the field, before it loads a model or writes a
sample. (tests/benchmarks/test_tasks.py proves the loader's message for each field rule; this file
proves
the command stops before any inference.)

Media paths that are absolute, hold ``..``, are URLs, or resolve through a symlink (to a file
or a folder) outside the data root are refused per item: an error sample, and the file they
point at (a valid video) is never read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2r_eval.cli import evaluate as eval_command
from p2r_eval.cli.main import main
from p2r_eval.eval.runstore import RunStore
from p2r_eval.media.synthetic_media import write_frame_folder, write_image, write_video

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2R_HUB", "0")


def r1_record(problem_id, **changes) -> dict:
    record = {"problem_id": problem_id, "problem": "Which way?", "data_type": "video",
              "problem_type": "multiple choice", "options": ["A. left", "B. right"],
              "solution": "<answer>B</answer>",
              "path": f"./Evaluation/MVBench/ssv2_video/{problem_id}.mp4"}
    record.update(changes)
    return record


BAD_FILES = {
    "invalid JSON": ("eval_mvbench.json", '[{"problem_id": 1, "problem": "x",]',
                     ["eval_mvbench.json", "invalid JSON"]),
    "missing field": ("eval_mvbench.json",
                      json.dumps([r1_record(1), {k: v for k, v in r1_record(2).items()
                                                 if k != "solution"}]),
                      ["eval_mvbench.json", "record #1 (problem_id 2)", "'solution'", "missing"]),
    "mistyped field": ("eval_mvbench.json", json.dumps([r1_record(1, options={"A": "left"})]),
                       ["eval_mvbench.json", "record #0 (problem_id 1)", "'options'"]),
    "duplicate id": ("eval_mvbench.json", json.dumps([r1_record(7), r1_record(8),
                                                      r1_record(7)]),
                     ["eval_mvbench.json", "record #2 (problem_id 7)", "'problem_id'",
                      "duplicate id '7' (first at record #0)"]),
    "unknown problem type": ("eval_mvbench.json",
                             json.dumps([r1_record(1, problem_type="yes/no")]),
                             ["eval_mvbench.json", "record #0", "'problem_type'",
                              "unknown answer type 'yes/no'"]),
    "not a list": ("eval_mvbench.json", json.dumps({"problem_id": 1}),
                   ["eval_mvbench.json", "expected a JSON list"]),
    "authors' JSONL, bad line": (
        "videomme/test.jsonl",
        json.dumps({"question_id": "001-1", "videoID": "a", "question": "q?",
                    "options": ["A. x", "B. y"], "answer": "A", "duration": "short",
                    "domain": "d", "sub_category": "s", "task_type": "t"}) + "\n{oops\n",
        ["videomme/test.jsonl", "line 2", "invalid JSON"]),
    "authors' nested JSON, wrong shape": (
        "tempcompass/questions/multi-choice.json", json.dumps({"video1": ["not", "nested"]}),
        ["tempcompass/questions/multi-choice.json", "expected an object keyed by"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_annotation_file_stops_the_run_before_the_model_loads(case, tmp_path, capsys,
                                                                    monkeypatch):
    relative, content, expected = BAD_FILES[case]
    task = {"videomme": "videomme", "tempcompass": "tempcompass"}.get(
        relative.split("/")[0], "mvbench")
    (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / relative).write_text(content)
    loaded = []
    monkeypatch.setattr(eval_command, "load_configured_backend",
                        lambda *args: loaded.append(args))
    output = tmp_path / "run"
    code = main(["--model", "demo", "--tasks", task, "--data-root", str(tmp_path), "--quiet",
                 "--output", str(output)])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("p2r-eval: ") and error.count("\n") == 1
    for part in expected:
        assert part in error, (part, error)
    assert not loaded, "the model was loaded before the annotations were checked"
    assert not (output / "samples").exists()


# -- media paths -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def escape_root(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A data root whose records point outside it in every way, at a valid video (so an item
    that read it would succeed), plus one safe item."""
    base = tmp_path_factory.mktemp("paths")
    root, outside = base / "root", base / "outside"
    videos = root / "Evaluation" / "MVBench" / "ssv2_video"
    videos.mkdir(parents=True)
    secret = write_video(outside / "secret.mp4", seconds=1, fps=8)
    write_video(videos / "ok.mp4", seconds=1, fps=8)
    (videos / "file_link.mp4").symlink_to(secret)
    (videos / "folder_link").symlink_to(outside, target_is_directory=True)
    (videos / "inside_link.mp4").symlink_to(videos / "ok.mp4")
    paths = {
        "absolute": str(secret),
        "dotdot": "./Evaluation/MVBench/ssv2_video/../../../../outside/secret.mp4",
        "dotdot-windows": "Evaluation\\..\\..\\outside\\secret.mp4",
        "file-symlink": "./Evaluation/MVBench/ssv2_video/file_link.mp4",
        "folder-symlink": "./Evaluation/MVBench/ssv2_video/folder_link/secret.mp4",
        "url": "file:///" + str(secret).lstrip("/"),
        "safe": "./Evaluation/MVBench/ssv2_video/ok.mp4",
        "symlink-inside-root": "./Evaluation/MVBench/ssv2_video/inside_link.mp4",
    }
    records = [r1_record(index, path=path) for index, path in enumerate(paths.values(), 1)]
    (root / "eval_mvbench.json").write_text(json.dumps(records))
    return {"root": root, "ids": {name: str(i) for i, name in enumerate(paths, 1)},
            "secret": secret}


EXPECTED_REFUSAL = {
    "absolute": "absolute media path",
    "dotdot": "contains '..'",
    "dotdot-windows": "contains '..'",
    "file-symlink": "escapes the data root",
    "folder-symlink": "escapes the data root",
    "url": "is a URL",
}


def test_paths_leaving_the_data_root_are_refused_and_never_read(escape_root, tmp_path):
    """Each refused path points at a valid video: had it been read, its item would have an
    output instead of an error."""
    output = tmp_path / "run"
    assert main(["--model", "demo", "--tasks", "mvbench", "--data-root", str(escape_root["root"]),
                 "--frames", "4", "--max-new-tokens", "4", "--quiet",
                 "--output", str(output)]) == 0
    samples = RunStore(output).load_samples("mvbench")
    ids = escape_root["ids"]
    for name, refusal in EXPECTED_REFUSAL.items():
        sample = samples[ids[name]]
        assert sample.output is None and refusal in sample.error, (name, sample.error)
        assert sample.error.startswith(f"mvbench/{ids[name]}: ")
    for name in ("safe", "symlink-inside-root"):
        assert samples[ids[name]].error is None and samples[ids[name]].output is not None


def test_a_frame_folder_image_linking_outside_the_data_root_is_refused(tmp_path):
    from p2r_eval.benchmarks.registry import load_task
    from p2r_eval.media.requests import MediaError, RequestBuilder
    from p2r_eval.media.video import FramePolicy

    root, outside = tmp_path / "root", tmp_path / "outside"
    folder = write_frame_folder(root / "Evaluation" / "MVBench" / "tvqa" / "frames" / "clip", 3)
    secret = write_image(outside / "secret.png", index=99)
    (folder / "00004.png").symlink_to(secret)
    record = r1_record(1601, data_type="frame",
                       path="./Evaluation/MVBench/tvqa/frames/clip.mp4")
    (root / "eval_mvbench.json").write_text(json.dumps([record]))
    item = load_task("mvbench", root).items[0]
    assert item.media_type == "frames" and "media_error" not in item.meta
    with pytest.raises(MediaError):
        RequestBuilder("p2r", FramePolicy(num_frames=4))(item)


# -- annotation input: refused before the teacher loads ----------------------------------------
@pytest.mark.parametrize(("content", "expected"), [
    ('{"problem_id": "a", "problem": "x"}\n{not json\n', "line 2: not valid JSON"),
    ('[{"problem_id": "a"}, {"problem_id": "a"}]', "problem_id 'a' was already used by record 0"),
    ('[{"problem": "no id"}]', "record 0: problem_id must be a non-empty string"),
    ('["not an object"]', "record 0: expected a JSON object, got str"),
])
def test_a_bad_annotation_input_stops_annotate_before_the_teacher_loads(content, expected,
                                                                        tmp_path, capsys):
    from p2r_train.cot.annotate import main as annotate_main

    path = tmp_path / ("records.jsonl" if content.startswith("{") else "records.json")
    path.write_text(content)
    output = tmp_path / "out"
    code = annotate_main(["--input", str(path), "--media-root", str(tmp_path), "--output",
                          str(output), "--teacher", "demo", "--judge", "openai",
                          "--judge-base-url", "http://127.0.0.1:9/v1", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and str(path) in error and expected in error
    assert not (output / "steps").exists()


# -- invalid text and deep nesting in every file a command reads -------------------------------
DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON, deeper than Python's parser goes
NOT_UTF8 = b"\xff\xfe not UTF-8 \xc3\x28"


def replay_line(item_id: int) -> str:
    return json.dumps({"task": "mvbench", "id": item_id, "output": "<answer>B</answer>"})


def finished_sample(item_id: int) -> str:
    return json.dumps({"id": str(item_id), "output": "<answer>B</answer>", "score": 1.0,
                       "error": None})


# name -> (file written, its bytes, what the one-line error must name)
UNREADABLE_FILES = {
    "annotations nested too deeply": (
        "data/eval_mvbench.json", DEEP.encode(), ["eval_mvbench.json", "nested too deeply"]),
    "annotations not UTF-8": ("data/eval_mvbench.json", NOT_UTF8,
                              ["eval_mvbench.json", "UTF-8"]),
    "authors' JSONL line not UTF-8": (
        "data/videomme/test.jsonl", b'{"question_id": "1"}\n' + NOT_UTF8 + b"\n",
        ["videomme/test.jsonl", "line 2", "UTF-8"]),
    "authors' JSONL line nested too deeply": (
        "data/videomme/test.jsonl", DEEP.encode() + b"\n",
        ["videomme/test.jsonl", "line 1", "nested too deeply"]),
    "replay line nested too deeply": (
        "replay.jsonl", f"{replay_line(1)}\n{DEEP}\n".encode(),
        ["replay.jsonl:2", "nested too deeply"]),
    "samples line not UTF-8": (
        "run/samples/mvbench.jsonl", NOT_UTF8 + f"\n{finished_sample(2)}\n".encode(),
        ["mvbench.jsonl, line 1", "UTF-8"]),
    "samples line nested too deeply": (
        "run/samples/mvbench.jsonl", f"{DEEP}\n{finished_sample(2)}\n".encode(),
        ["mvbench.jsonl, line 1", "nested too deeply"]),
    "results nested too deeply": ("run/results.json", DEEP.encode(),
                                  ["results.json", "nested too deeply"]),
    "results not UTF-8": ("run/results.json", NOT_UTF8, ["results.json", "UTF-8"]),
}


@pytest.mark.parametrize("case", list(UNREADABLE_FILES))
def test_a_file_of_invalid_text_or_deep_nesting_stops_the_run_naming_it(case, tmp_path, capsys):
    relative, content, expected = UNREADABLE_FILES[case]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "eval_mvbench.json").write_text(json.dumps([r1_record(1), r1_record(2)]))
    (tmp_path / "replay.jsonl").write_text(f"{replay_line(1)}\n{replay_line(2)}\n")
    (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / relative).write_bytes(content)
    task = "videomme" if "videomme" in relative else "mvbench"
    code = main(["--model", f"replay:{tmp_path / 'replay.jsonl'}", "--tasks", task,
                 "--data-root", str(tmp_path / "data"), "--quiet",
                 "--output", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2, error
    assert error.startswith("p2r-eval: ") and error.count("\n") == 1, error
    for part in expected:
        assert part in error, (part, error)


@pytest.mark.parametrize(("content", "expected"), [
    (DEEP.encode(), "nested too deeply"),
    (b'{"problem_id": "a"}\n' + NOT_UTF8 + b"\n", "UTF-8"),
])
def test_annotate_input_of_invalid_text_or_deep_nesting_stops_naming_it(content, expected,
                                                                        tmp_path, capsys):
    from p2r_train.cot.annotate import main as annotate_main

    path = tmp_path / ("records.json" if content.startswith(b"[") else "records.jsonl")
    path.write_bytes(content)
    code = annotate_main(["--input", str(path), "--media-root", str(tmp_path), "--output",
                          str(tmp_path / "out"), "--teacher", "demo", "--judge", "openai",
                          "--judge-base-url", "http://127.0.0.1:9/v1", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and str(path) in error and expected in error, error


# -- path oddities: every command that reads paths ----------------------------------------------
ODD_MEDIA = {  # record path -> what the item's error (or check-data's entry) must say
    "loop": ("./Evaluation/MVBench/ssv2_video/loop_a.mp4", "symlink loop"),
    "nul": ("./Evaluation/MVBench/ssv2_video/a\x00b.mp4", "NUL character"),
    "long-name": ("./Evaluation/MVBench/ssv2_video/" + "n" * 5000 + ".mp4", "name too long"),
}


@pytest.fixture(scope="module")
def odd_root(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Records whose media paths are a symlink loop, hold a NUL byte or a 5,000-character
    name, one valid video whose name holds a newline, and one plain valid video."""
    root = tmp_path_factory.mktemp("odd") / "root"
    videos = root / "Evaluation" / "MVBench" / "ssv2_video"
    videos.mkdir(parents=True)
    (videos / "loop_a.mp4").symlink_to(videos / "loop_b.mp4")
    (videos / "loop_b.mp4").symlink_to(videos / "loop_a.mp4")
    write_video(videos / "new\nline.mp4", seconds=1, fps=8)
    write_video(videos / "ok.mp4", seconds=1, fps=8)
    paths = {name: path for name, (path, _) in ODD_MEDIA.items()}
    paths["newline"] = "./Evaluation/MVBench/ssv2_video/new\nline.mp4"
    paths["missing-newline"] = "./Evaluation/MVBench/ssv2_video/gone\n    forged: 0\x1b[2J.mp4"
    paths["ok"] = "./Evaluation/MVBench/ssv2_video/ok.mp4"
    ids = {name: str(index) for index, name in enumerate(paths, 1)}
    records = [r1_record(int(ids[name]), path=path) for name, path in paths.items()]
    (root / "eval_mvbench.json").write_text(json.dumps(records))
    (root / "replay.jsonl").write_text("".join(replay_line(int(i)) + "\n" for i in ids.values()))
    return {"root": root, "ids": ids}


def test_odd_media_paths_are_each_items_error_for_the_model(odd_root, tmp_path):
    output = tmp_path / "run"
    assert main(["--model", "demo", "--tasks", "mvbench", "--data-root", str(odd_root["root"]),
                 "--frames", "4", "--max-new-tokens", "4", "--quiet",
                 "--output", str(output)]) == 0
    samples = RunStore(output).load_samples("mvbench")
    for name, (_, reason) in ODD_MEDIA.items():
        error = samples[odd_root["ids"][name]].error
        assert error.startswith(f"mvbench/{odd_root['ids'][name]}: ") and reason in error, error
    for name in ("newline", "ok"):
        assert samples[odd_root["ids"][name]].output is not None


def test_odd_media_paths_do_not_stop_a_replay(odd_root, tmp_path):
    output = tmp_path / "run"
    assert main(["--model", f"replay:{odd_root['root'] / 'replay.jsonl'}", "--tasks", "mvbench",
                 "--data-root", str(odd_root["root"]), "--quiet", "--output", str(output)]) == 0
    assert len(RunStore(output).load_samples("mvbench")) == len(odd_root["ids"])


def test_check_data_reports_each_odd_media_path_on_one_escaped_line(odd_root, capsys):
    assert main(["check-data", "--tasks", "mvbench", "--data-root", str(odd_root["root"])]) == 1
    report = capsys.readouterr().out
    assert_printable(report)
    for name, (_, reason) in ODD_MEDIA.items():
        assert any(reason in line for line in report.split("\n")), (name, report)
    assert "newline" not in report  # the valid video whose name holds a newline is fine
    assert "gone\\u000a    forged: 0\\u001b[2J.mp4" in report  # missing: one escaped line
    assert "\n    forged: 0" not in report


def test_annotate_makes_each_odd_media_path_that_records_failure(odd_root, tmp_path,
                                                                 monkeypatch):
    from judge_server import FakeJudgeServer
    from p2r_train.cot.annotate import main as annotate_main

    records = json.loads((odd_root["root"] / "eval_mvbench.json").read_text())
    for record in records:
        record["problem_id"] = str(record["problem_id"])
    (tmp_path / "records.json").write_text(json.dumps(records))
    output = tmp_path / "out"
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeJudgeServer(api_key="test-key") as server:
        assert annotate_main(["--input", str(tmp_path / "records.json"), "--media-root",
                              str(odd_root["root"]), "--output", str(output), "--teacher",
                              "demo", "--frames", "4", "--max-new-tokens", "4", "--judge",
                              "openai", "--judge-base-url", server.openai_base_url,
                              "--judge-model", "fake-judge-1", "--quiet"]) == 0
    lines = (output / "dropped.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    dropped = {record["problem_id"]: record for record in map(json.loads, lines)}
    for name, (_, reason) in ODD_MEDIA.items():
        assert reason in json.dumps(dropped[odd_root["ids"][name]]), dropped


def assert_printable(text: str) -> None:
    raw = sorted({repr(char) for char in text if not char.isprintable() and char != "\n"})
    assert not raw, f"raw control characters printed: {raw}"


@pytest.fixture
def odd_arguments(tmp_path) -> dict[str, str]:
    """Paths for the command line: a symlink loop and a 5,000-character name."""
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    return {"loop": str(tmp_path / "loop_a"), "long-name": str(tmp_path / ("n" * 5000))}


def replay_run(root: Path, replay: str, output: Path, *extra: str) -> list[str]:
    return ["--model", f"replay:{replay}", "--tasks", "mvbench", "--data-root", str(root),
            "--quiet", "--output", str(output), *extra]


COMMANDS_READING_PATHS = {  # command line with PATH where the odd path goes
    "eval --data-root": lambda r, o: replay_run(Path("PATH"), str(r / "replay.jsonl"), o),
    "eval --model replay:": lambda r, o: replay_run(r, "PATH", o),
    "eval --output": lambda r, o: replay_run(r, str(r / "replay.jsonl"), Path("PATH")),
    "eval --frame-cache": lambda r, o: ["--model", "demo", "--tasks", "mvbench", "--limit", "1",
                                        "--frames", "4", "--max-new-tokens", "2", "--quiet",
                                        "--output", str(o), "--frame-cache", "PATH"],
    "eval --judge-cache": lambda r, o: replay_run(r, str(r / "replay.jsonl"), o, "--judge",
                                                  "openai", "--judge-base-url",
                                                  "http://127.0.0.1:9/v1", "--judge-cache",
                                                  "PATH"),
    "check-data": lambda r, o: ["check-data", "--tasks", "mvbench", "--data-root", "PATH"],
    "leaderboard": lambda r, o: ["leaderboard", "PATH", "--out", str(o)],
    "compare": lambda r, o: ["compare", "PATH", "PATH"],
    "merge": lambda r, o: ["merge", "PATH"],
}


@pytest.mark.parametrize("oddity", ["loop", "long-name"])
@pytest.mark.parametrize("command", list(COMMANDS_READING_PATHS))
def test_odd_paths_on_the_command_line_stop_with_one_line(command, oddity, odd_root,
                                                         odd_arguments, tmp_path, capsys):
    template = COMMANDS_READING_PATHS[command](odd_root["root"], tmp_path / "run")
    argv = [part.replace("PATH", odd_arguments[oddity]) for part in template]
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    if code == 1:  # check-data reports a benchmark's error; an unusable frame cache fails
        assert command in ("check-data", "eval --frame-cache"), captured  # each item
        return
    assert code in (2, 4), captured
    said = captured.err.rstrip("\n").split("\n")[-1]
    assert said.startswith("p2r-eval"), captured
