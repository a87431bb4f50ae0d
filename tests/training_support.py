"""Shared pieces of the training tests: the demo model, real synthetic videos, records, a
CPU GRPO configuration and a judge on the local fake server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from p2r_eval.media.synthetic_media import write_image, write_video
from p2r_eval.media.video import FramePolicy
from p2r_eval.models.demo import ensure_demo_model

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Four tiny frames (2x2 merged patches each): eight video tokens per prompt.
TEST_POLICY = FramePolicy(num_frames=4, max_pixels=28 * 28 * 4)
OPTIONS = ["A. a red ball", "B. a blue car"]


def demo_model(tmp_path_factory: Any) -> Path:
    """The demo Qwen2.5-VL, built once per test session."""
    return ensure_demo_model(tmp_path_factory.getbasetemp() / "p2r-cache")


def write_clips(folder: Path, count: int, *, first_seed: int = 0) -> list[str]:
    """``count`` one-second 64x48 clips named clip<i>.mp4; their names."""
    names = []
    for index in range(count):
        name = f"clip{index}.mp4"
        write_video(folder / name, seconds=1, fps=8, width=64, height=48,
                    seed=first_seed + index)
        names.append(name)
    return names


def write_picture(folder: Path, name: str = "picture.png") -> str:
    write_image(folder / name, width=64, height=48)
    return name


def rl_record(index: int, path: str, *, data_type: str = "video") -> dict[str, Any]:
    return {
        "problem_id": index, "problem": "What moves across the room?", "data_type": data_type,
        "problem_type": "multiple choice", "options": OPTIONS,
        "solution": "<answer>A</answer>", "path": path, "data_source": "unit",
    }


def cot_record(index: int, path: str, *, data_type: str = "video") -> dict[str, Any]:
    return {
        **rl_record(index, path, data_type=data_type),
        "observation": "A red ball rolls from the left wall to the right wall.",
        "process": "<think>The moving object is the red ball, option A.</think>",
        "answer": "A",
    }


def grpo_config(output: Path, **overrides: Any) -> Any:
    from trl import GRPOConfig

    settings = {
        "output_dir": str(output), "use_cpu": True, "bf16": False, "report_to": "none",
        "per_device_train_batch_size": 4, "num_generations": 2, "max_completion_length": 12,
        "max_steps": 2, "logging_steps": 1, "save_strategy": "no",
        "gradient_checkpointing": False, "learning_rate": 1e-3, "seed": 0,
        "dataloader_num_workers": 0, "loss_type": "grpo",
    }
    return GRPOConfig(**{**settings, **overrides})


def fake_server_judge(server: Any) -> Any:
    """The real judge (OpenAI-compatible backend, real SDK) on the local fake server."""
    from p2r_eval.judge import RetryPolicy, make_judge

    return make_judge("openai", base_url=server.openai_base_url, model="fake-judge-1",
                      max_retries=0, timeout_s=30.0,
                      retry_policy=RetryPolicy(base_delay_s=0.001, max_delay_s=0.01))
