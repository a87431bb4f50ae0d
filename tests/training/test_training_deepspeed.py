"""The multi-GPU commands, run for real: ``accelerate launch`` with the shipped DeepSpeed
configs (training/configs/multi_gpu_zero2.yaml, multi_gpu_zero3.yaml, multi_node.yaml), two
processes on the CPU (DeepSpeed's cpu accelerator, Gloo), the demo model and real videos.

Only what a CPU needs is overridden on the command line: ``--num_processes 2``,
``--mixed_precision no`` and a free port. ZeRO-2 SFT and ZeRO-3 PA-GRPO (video in every
forward, the judge on the local fake server) each run 2 steps; the tests check the run ended
well, the loss is finite, the DeepSpeed checkpoint holds one shard per process, and the final
folder is the full trained model under the base model's key names and shapes, loadable by
``p2r-eval``. Skipped where deepspeed is not installed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from judge_server import FakeJudgeServer
from training_support import TEST_POLICY, cot_record, rl_record, write_clips

pytest.importorskip("deepspeed")

from p2r_train.tracking.dynamics import log_history
from safetensors.torch import load_file

from p2r_eval.media.video import sample_frames
from p2r_eval.models import DecodingSettings, Request, load_backend

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / "training" / "configs"
LAUNCH_TIMEOUT_S = 400  # the first run on a machine also compiles DeepSpeed's CPU comm op


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_launch(config: str, command: list[str], *, port: int, launcher_options: list[str],
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """``accelerate launch --config_file training/configs/<config> -m p2r_train.cli ...`` on
    the CPU, in its own process group."""
    arguments = [sys.executable, "-m", "accelerate.commands.launch",
                 "--config_file", str(CONFIGS / config), *launcher_options,
                 "--mixed_precision", "no", "--main_process_port", str(port),
                 "-m", "p2r_train.cli", *command]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "DS_ACCELERATOR": "cpu",
                   "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    return subprocess.Popen(arguments, cwd=REPO_ROOT, env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(process: subprocess.Popen, config: str) -> subprocess.CompletedProcess:
    """Wait for a launch; its whole process tree is killed if it outlives the timeout."""
    try:
        output, _ = process.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{config} run exceeded {LAUNCH_TIMEOUT_S} s:\n{output[-4000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def launch(config: str, command: list[str], env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess:
    """One launch of two processes on this machine."""
    process = start_launch(config, command, port=free_port(),
                           launcher_options=["--num_processes", "2"], env=env)
    return finish(process, config)


def common_options(model_dir: Path, data: Path, output: Path, batch_size: int) -> list[str]:
    return ["--model", str(model_dir), "--data", str(data), "--output", str(output),
            "--max-steps", "2", "--batch-size", str(batch_size), "--frames", "4",
            "--max-pixels", str(TEST_POLICY.max_pixels), "--cpu", "--report-to", "none",
            "--dataloader-workers", "0", "--save-steps", "2"]


def logged_steps(output: Path) -> list[dict]:
    return [entry for entry in log_history(output) if "loss" in entry]


def assert_full_model(output: Path, base_dir: Path) -> dict:
    """The final folder holds every tensor of the base model, under the same key names and
    with the same shapes (not empty ZeRO-3 shards), and the weights changed; returns them."""
    base = load_file(base_dir / "model.safetensors")
    saved = load_file(output / "model.safetensors")
    assert sorted(saved) == sorted(base)
    assert {k: tuple(t.shape) for k, t in saved.items()} == {
        k: tuple(t.shape) for k, t in base.items()}
    assert any(not saved[k].equal(base[k]) for k in base)
    return saved


def assert_evaluable(output: Path, clip: Path) -> None:
    """``p2r-eval --model OUTPUT`` loads the folder and answers a video question."""
    backend = load_backend(str(output), decoding=DecodingSettings(max_new_tokens=4),
                           device="cpu")
    sampled = sample_frames(clip, 4)
    request = Request("unit", "0", "What moves?", frames=sampled.frames, fps=sampled.sample_fps)
    [text] = backend.generate([request])
    assert isinstance(text, str)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deepspeed-media")
    write_clips(folder, 2)
    return folder


def test_sft_under_zero2_on_two_processes(model_dir, media, tmp_path):
    data = media / "cot.json"
    data.write_text(json.dumps([cot_record(i, f"clip{i}.mp4") for i in range(2)]))
    output = tmp_path / "sft"
    result = launch("multi_gpu_zero2.yaml",
                    ["sft", *common_options(model_dir, data, output, 1), "--lr", "5e-3"])
    assert result.returncode == 0, result.stdout[-4000:]
    losses = [entry["loss"] for entry in logged_steps(output)]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    # DeepSpeed's own checkpoint: ZeRO-2 shards the optimizer state over the two processes
    engine_state = output / "checkpoint-2" / "global_step2"
    assert sorted(p.name for p in engine_state.glob("*optim_states.pt")) == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    assert_full_model(output, model_dir)
    assert_evaluable(output, media / "clip0.mp4")


def test_sft_on_two_nodes_with_the_multi_node_config(model_dir, media, tmp_path):
    """training/configs/multi_node.yaml as two one-process "nodes" of this machine, each
    started with its own --machine_rank, meeting at 127.0.0.1 (ZeRO-3)."""
    data = media / "cot.json"
    data.write_text(json.dumps([cot_record(i, f"clip{i}.mp4") for i in range(2)]))
    output = tmp_path / "sft-nodes"
    command = ["sft", *common_options(model_dir, data, output, 1), "--lr", "5e-3"]
    port = free_port()
    nodes = [start_launch("multi_node.yaml", command, port=port,
                          launcher_options=["--num_processes", "2", "--num_machines", "2",
                                            "--machine_rank", str(rank),
                                            "--main_process_ip", "127.0.0.1"])
             for rank in (0, 1)]
    results = [finish(node, "multi_node.yaml") for node in nodes]
    for result in results:
        assert result.returncode == 0, result.stdout[-4000:]
    losses = [entry["loss"] for entry in logged_steps(output)]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    engine_state = output / "checkpoint-2" / "global_step2"
    assert len(list(engine_state.glob("*model_states.pt"))) == 2  # one shard per node
    assert_full_model(output, model_dir)


def vocabulary_words(model_dir: Path) -> str:
    """The whole words of the demo tokenizer's vocabulary, space separated."""
    from transformers import AutoTokenizer

    vocabulary = AutoTokenizer.from_pretrained(model_dir).get_vocab()
    return " ".join(sorted(t[1:] for t in vocabulary if t.startswith("Ġ") and t[1:].isalpha()))


def test_pa_grpo_under_zero3_on_two_processes(model_dir, media, tmp_path):
    # A free-form question whose reference answer is every word of the demo vocabulary: the
    # untrained model's completions then earn different ROUGE rewards within a group, so
    # the advantages, and the gradients through the partitioned parameters, are not zero.
    words = vocabulary_words(model_dir)
    records = [{**rl_record(i, f"clip{i}.mp4"), "problem_type": "free-form", "options": [],
                "solution": f"<answer>{words}</answer>"} for i in range(2)]
    data = media / "rl.json"
    data.write_text(json.dumps(records))
    output = tmp_path / "grpo"
    with FakeJudgeServer() as server:
        result = launch("multi_gpu_zero3.yaml",
                        ["grpo", *common_options(model_dir, data, output, 2), "--lr", "1e-3",
                         "--num-generations", "2",
                         "--max-completion-length", "16", "--judge", "openai",
                         "--judge-base-url", server.openai_base_url],
                        env={"OPENAI_API_KEY": "test-key"})
    assert result.returncode == 0, result.stdout[-4000:]
    steps = logged_steps(output)
    assert len(steps) == 2 and all(math.isfinite(step["loss"]) for step in steps)
    assert "rewards/perception/mean" in steps[0] and "collapse/reasoning" in steps[0]
    assert any(step["grad_norm"] > 0 for step in steps)
    # ZeRO-3: each process holds its own shard of the parameters
    engine_state = output / "checkpoint-2" / "global_step2"
    assert sorted(p.name for p in engine_state.glob("*model_states.pt")) == [
        "zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]
    # the saved model is gathered from the shards, and training reached the vision tower
    # through the video inputs
    saved = assert_full_model(output, model_dir)
    base = load_file(model_dir / "model.safetensors")
    assert any(not saved[k].equal(base[k]) for k in base if k.startswith("visual."))
    assert_evaluable(output, media / "clip0.mp4")
