"""``check-data``: records found, missing and unreadable media, paths leaving the data root."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from p2r_eval.benchmarks.data_check import check_data, media_problem, render_report
from p2r_eval.cli.check_data import add_subcommands
from p2r_eval.media import synthetic_media


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2R_HUB", "0")


def record(pid: int, path: str, data_type: str = "video") -> dict:
    return {"problem_id": pid, "problem": "Which way?", "data_type": data_type,
            "problem_type": "multiple choice", "options": ["A. left", "B. right"],
            "solution": "<answer>A</answer>", "path": path}


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    base = root / "Evaluation" / "MVBench"
    synthetic_media.write_video(base / "good.mp4", seconds=0.5, fps=8)
    synthetic_media.write_text_file(base / "text.mp4")
    synthetic_media.write_zero_byte_file(base / "empty.mp4")
    synthetic_media.write_audio_only(base / "audio.mp4", seconds=0.2)
    synthetic_media.write_frame_folder(base / "tvqa" / "clip_ok", 3)
    (base / "tvqa" / "clip_blank").mkdir(parents=True)
    records = [
        record(1, "./Evaluation/MVBench/good.mp4"),
        record(2, "./Evaluation/MVBench/good.mp4"),          # the same video twice: one file
        record(3, "./Evaluation/MVBench/missing.mp4"),
        record(4, "./Evaluation/MVBench/text.mp4"),
        record(5, "./Evaluation/MVBench/empty.mp4"),
        record(6, "./Evaluation/MVBench/audio.mp4"),
        record(7, "../outside.mp4"),
        record(1601, "./Evaluation/MVBench/tvqa/clip_ok.mp4", "frame"),
        record(1602, "./Evaluation/MVBench/tvqa/clip_blank.mp4", "frame"),
        record(1603, "./Evaluation/MVBench/tvqa/clip_gone.mp4", "frame"),
    ]
    (root / "eval_mvbench.json").write_text(json.dumps(records))
    (root / "eval_videomme.json").write_text("[{not json")
    return root


def test_report_lists_every_problem(data_root: Path) -> None:
    mvbench, videomme = check_data(["mvbench", "videomme"], data_root)
    assert (mvbench.source_format, mvbench.records, mvbench.expected_records) == (
        "video-r1", 10, 4000)
    assert mvbench.media_files == 8
    assert sorted(mvbench.missing) == ["Evaluation/MVBench/missing.mp4",
                                       "Evaluation/MVBench/tvqa/clip_gone"]
    unreadable = dict(entry.split(": ", 1) for entry in mvbench.unreadable)
    assert set(unreadable) == {"Evaluation/MVBench/text.mp4", "Evaluation/MVBench/empty.mp4",
                               "Evaluation/MVBench/audio.mp4", "Evaluation/MVBench/tvqa/clip_blank"}
    assert unreadable["Evaluation/MVBench/empty.mp4"] == "empty file"
    assert unreadable["Evaluation/MVBench/audio.mp4"] == "no video stream"
    assert unreadable["Evaluation/MVBench/tvqa/clip_blank"] == "frame folder holds no images"
    assert mvbench.escaping == ["7: media path contains '..': ../outside.mp4"]
    assert not mvbench.ok
    assert videomme.error is not None and "eval_videomme.json: invalid JSON" in videomme.error


def test_without_probing_only_existence_is_checked(data_root: Path) -> None:
    (mvbench,) = check_data(["mvbench"], data_root, probe=False)
    assert [e.split(":")[0] for e in mvbench.unreadable] == [
        "Evaluation/MVBench/empty.mp4", "Evaluation/MVBench/tvqa/clip_blank"]


def test_media_problem_accepts_real_media(tmp_path: Path) -> None:
    video = synthetic_media.write_video(tmp_path / "v.mp4", seconds=0.5, fps=8)
    image = synthetic_media.write_image(tmp_path / "i.png")
    assert media_problem(video, "video") is None
    assert media_problem(image, "image") is None
    assert media_problem(tmp_path, "video") == "not a file"


def test_render_report(data_root: Path) -> None:
    text = render_report(check_data(["mvbench", "videomme"], data_root), data_root)
    assert ("mvbench: video-r1 format, 10 records (expected 4,000), 8 media files -> PROBLEMS"
            in text)
    assert "  missing: 2\n    Evaluation/MVBench/missing.mp4" in text
    assert "  path refused: 1" in text
    assert "videomme: ERROR" in text


def run_cli(*arguments: str) -> int:
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers())
    args = parser.parse_args(["check-data", *arguments])
    return args.func(args)


def test_cli_exit_status_and_json(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--tasks", "mvbench", "--data-root", str(data_root), "--json") == 1
    reports = json.loads(capsys.readouterr().out)
    assert reports[0]["task"] == "mvbench" and reports[0]["ok"] is False
    assert len(reports[0]["missing"]) == 2


def test_cli_on_the_demo_suite_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("P2R_CACHE", str(tmp_path))
    assert run_cli("--tasks", "all") == 0
    out = capsys.readouterr().out
    assert out.startswith("data root: demo suite")
    assert out.count("-> OK") == 7
