"""Interruption of training runs.

``p2r-train annotate`` killed with SIGKILL at three seeded random points (while it judges)
resumes to byte-identical cot.jsonl and dropped.jsonl, with no item generated, verified or
judged twice (tests/training/test_annotate.py kills it once; this adds random points).

``p2r-train sft`` killed with SIGKILL after two seeded random checkpoints resumes with
``--resume`` to the same weights and the same loss curve as an uninterrupted run (CPU,
float32, the demo model: bit for bit). These tests found two bugs of ``--resume``, since fixed
in training/tracking/checkpoints.py (see docs/reliability.md):

1. The weights were not restored: transformers saves Qwen2.5-VL checkpoints under the legacy
   key names while ``Trainer._load_from_checkpoint`` loads the raw file with ``strict=False``,
   so no key matched and training went on from the initial weights.
2. A kill while the Trainer writes a checkpoint leaves the newest ``checkpoint-N`` folder
   without its trainer state; ``--resume`` took it anyway and failed.

A third window: a kill while trainer_state.json itself is being written leaves it truncated;
the newest-complete-checkpoint rule requires it to parse, so that checkpoint is skipped.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest
from judge_server import FakeJudgeServer
from killing import run_and_kill
from p2r_train.cli import main
from p2r_train.cot.annotate import main as annotate_main
from training_support import cot_record, write_clips

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS = 4


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sft-data")
    names = write_clips(folder, 4)
    records = [cot_record(index, name) for index, name in enumerate(names)]
    (folder / "cot.json").write_text(json.dumps(records))
    return folder / "cot.json"


def sft_args(model_dir: Path, data_file: Path, output: Path, *extra: str) -> list[str]:
    return ["sft", "--model", str(model_dir), "--data", str(data_file), "--output", str(output),
            "--max-steps", str(STEPS), "--batch-size", "2", "--lr", "5e-3", "--frames", "4",
            "--max-pixels", str(28 * 28 * 4), "--cpu", "--report-to", "none",
            "--dataloader-workers", "0", "--save-steps", "1", *extra]


def saved_state(checkpoint: Path) -> dict | None:
    """The trainer state of a checkpoint the Trainer has finished writing (it writes
    trainer_state.json last), else None."""
    try:
        return json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def losses(output: Path) -> list[tuple[int, float]]:
    state = json.loads((output / "trainer_state.json").read_text())
    return [(entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry]


@pytest.fixture(scope="module")
def uninterrupted(model_dir: Path, data_file: Path, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("sft") / "uninterrupted"
    assert main(sft_args(model_dir, data_file, output)) == 0
    return output


def train_and_kill(arguments: list[str], checkpoint: Path) -> None:
    """Run ``p2r-train`` with ``arguments``; SIGKILL it once ``checkpoint`` is complete."""
    run_and_kill([sys.executable, "-m", "p2r_train.cli", *arguments],
                 lambda: saved_state(checkpoint) is not None,
                 env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT, timeout_s=300)


def test_sft_killed_at_two_random_checkpoints_resumes_to_the_same_weights(
    model_dir, data_file, uninterrupted, tmp_path
):
    output = tmp_path / "killed"
    first, second = sorted(random.Random(3).sample(range(1, STEPS), 2))
    train_and_kill(sft_args(model_dir, data_file, output), output / f"checkpoint-{first}")
    train_and_kill(sft_args(model_dir, data_file, output, "--resume"),
                   output / f"checkpoint-{second}")
    assert not (output / "model.safetensors").exists()  # killed before the end
    assert main(sft_args(model_dir, data_file, output, "--resume")) == 0
    assert losses(output) == losses(uninterrupted)
    assert (output / "model.safetensors").read_bytes() == (
        uninterrupted / "model.safetensors").read_bytes()


def half_written_checkpoint(uninterrupted: Path, output: Path, *, state_bytes: int) -> None:
    """checkpoint-2 complete, and checkpoint-3 as a kill inside ``_save_checkpoint`` leaves
    it: weights written, then ``state_bytes`` bytes of trainer_state.json (0: not begun)."""
    output.mkdir()
    shutil.copytree(uninterrupted / "checkpoint-2", output / "checkpoint-2")
    partial = output / "checkpoint-3"
    partial.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(uninterrupted / "checkpoint-3" / name, partial / name)
    if state_bytes:
        state = (uninterrupted / "checkpoint-3" / "trainer_state.json").read_bytes()
        (partial / "trainer_state.json").write_bytes(state[:state_bytes])


def test_resume_skips_a_checkpoint_killed_before_its_trainer_state(
    model_dir, data_file, uninterrupted, tmp_path
):
    output = tmp_path / "run"
    half_written_checkpoint(uninterrupted, output, state_bytes=0)
    assert main(sft_args(model_dir, data_file, output, "--resume")) == 0
    assert losses(output) == losses(uninterrupted)


def test_resume_skips_a_checkpoint_killed_while_writing_its_trainer_state(
    model_dir, data_file, uninterrupted, tmp_path
):
    output = tmp_path / "run"
    half_written_checkpoint(uninterrupted, output, state_bytes=40)
    assert main(sft_args(model_dir, data_file, output, "--resume")) == 0
    assert losses(output) == losses(uninterrupted)


# -- p2r-train annotate: three kills at random points --------------------------------------------
ANNOTATE_ITEMS = 10


@pytest.fixture(scope="module")
def annotate_input(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from p2r_eval.media.synthetic_media import write_video

    base = tmp_path_factory.mktemp("annotate")
    write_video(base / "media" / "clip.mp4", seconds=1, fps=8)
    options = ["A. a red ball", "B. a blue cube"]
    records = [{"problem_id": f"item-{i}", "problem": f"What rolls in scene {i}?",
                "data_type": "video", "problem_type": "multiple choice", "options": options,
                "solution": "<answer>A</answer>", "path": "./clip.mp4"}
               for i in range(ANNOTATE_ITEMS)]
    (base / "records.json").write_text(json.dumps(records))
    seen = ["a red ball rolls", "something rolls"]
    teacher = [{"task": "annotate", "id": f"item-{i}",
                "output": f"<observation>Scene {i}: {seen[i % 2]}.</observation>"
                          "<think>It is the ball.</think><answer>A</answer>"}
               for i in range(ANNOTATE_ITEMS)]
    (base / "teacher.jsonl").write_text("\n".join(map(json.dumps, teacher)) + "\n")
    return {"input": base / "records.json", "media": base / "media",
            "teacher": base / "teacher.jsonl"}


def annotate_args(data: dict[str, Path], output: Path, url: str) -> list[str]:
    return ["--input", str(data["input"]), "--media-root", str(data["media"]),
            "--output", str(output), "--teacher", f"replay:{data['teacher']}", "--frames", "4",
            "--judge", "anthropic", "--judge-base-url", url, "--judge-model", "fake-judge-1",
            "--judge-concurrency", "1", "--judge-timeout", "60", "--quiet"]


def log_ids(output: Path, name: str) -> list[str]:
    path = output / "steps" / name
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().split("\n") if line.strip()]


def test_annotation_killed_at_three_random_points_writes_the_same_files(
    annotate_input, tmp_path, monkeypatch
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    with FakeJudgeServer() as server:
        assert annotate_main(annotate_args(annotate_input, reference, server.url)) == 0
    points = sorted(random.Random(9).sample(range(1, ANNOTATE_ITEMS), 3))
    env = {**os.environ, "ANTHROPIC_API_KEY": "test-key", "PYTHONPATH": str(REPO_ROOT)}
    calls = 0
    for point in points:
        # Each judge call takes 0.3 s, so the kill lands while the run is judging.
        with FakeJudgeServer(faults=["timeout"] * 50, slow_reply_s=0.3) as server:
            run_and_kill([sys.executable, "-m", "p2r_train.cot.annotate",
                          *annotate_args(annotate_input, killed, server.url)],
                         lambda point=point: len(log_ids(killed, "judged.jsonl")) >= point,
                         env=env, cwd=REPO_ROOT, timeout_s=120)
            calls += server.model_calls()
    assert not (killed / "cot.jsonl").exists()
    with FakeJudgeServer() as server:
        assert annotate_main(annotate_args(annotate_input, killed, server.url)) == 0
        calls += server.model_calls()
    for name in ("cot.jsonl", "dropped.jsonl"):
        assert (killed / name).read_bytes() == (reference / name).read_bytes()
    for name in ("generated.jsonl", "verified.jsonl", "judged.jsonl"):
        ids = log_ids(killed, name)
        assert len(ids) == len(set(ids)) == ANNOTATE_ITEMS, name
    # Stored verdicts are never asked again; at most the call in flight at each kill is.
    assert ANNOTATE_ITEMS <= calls <= ANNOTATE_ITEMS + len(points)
