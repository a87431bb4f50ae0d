"""``p2r-train``: subcommand overview, help with examples, a PA-GRPO run and its plot."""

from __future__ import annotations

import json
import sys

import pytest
from judge_server import FakeJudgeServer
from p2r_train.cli import main
from p2r_train.tracking.dynamics import NoTrainingLogError, log_history, plot_training_dynamics
from training_support import TEST_POLICY, demo_model, rl_record, write_clips


def test_no_subcommand_lists_the_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("sft", "grpo", "plot"):
        assert f"  {name}" in out


@pytest.mark.parametrize("command", ["sft", "grpo", "plot"])
def test_every_subcommand_has_help_with_examples(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"p2r-train {command}" in out


def test_ablation_switches_are_on_the_grpo_command(capsys):
    with pytest.raises(SystemExit):
        main(["grpo", "--help"])
    out = capsys.readouterr().out
    for switch in ("--process-agnostic", "--no-separation", "--no-perception-reward",
                   "--no-reasoning-reward", "--no-length-reward"):
        assert switch in out


@pytest.mark.parametrize(("flags", "reason"), [
    (["--process-agnostic", "--no-separation"], "--no-separation is implied"),
    (["--no-separation", "--process-agnostic"], "--no-separation is implied"),
    (["--no-perception-reward", "--process-agnostic"], "no perception reward to switch off"),
])
def test_conflicting_ablations_are_a_usage_error(capsys, tmp_path, flags, reason):
    with pytest.raises(SystemExit) as exit_info:
        main(["grpo", "--model", "demo", "--data", str(tmp_path / "rl.json"), "--output",
              str(tmp_path / "run"), *flags])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: p2r-train grpo") and reason in error
    assert "Traceback" not in error and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-data")
    names = write_clips(folder, 2)
    (folder / "rl.json").write_text(json.dumps([rl_record(i, n) for i, n in enumerate(names)]))
    return folder / "rl.json"


def grpo_command(model_dir, data_file, output, *extra):
    return ["grpo", "--model", str(model_dir), "--data", str(data_file), "--output",
            str(output), "--max-steps", "2", "--batch-size", "4", "--num-generations", "2",
            "--max-completion-length", "8", "--frames", "4", "--max-pixels",
            str(TEST_POLICY.max_pixels), "--cpu", "--report-to", "none",
            "--dataloader-workers", "0", "--beta", "0", *extra]


def test_pa_grpo_without_a_judge_is_refused(tmp_path_factory, data_file, tmp_path):
    with pytest.raises(SystemExit, match="needs --judge"):
        main(grpo_command(demo_model(tmp_path_factory), data_file, tmp_path / "run"))


def test_vllm_rollouts_without_vllm_say_how_to_install(tmp_path_factory, data_file, tmp_path,
                                                      monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    command = grpo_command(demo_model(tmp_path_factory), data_file, tmp_path / "run",
                           "--process-agnostic", "--rollouts", "vllm")
    with pytest.raises(SystemExit, match=r"p2r-train grpo: .*pip install 'p2r\[vllm\]'"):
        main(command)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_pa_grpo_run_then_plot(tmp_path_factory, data_file, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    output = tmp_path / "pa"
    with FakeJudgeServer() as server:
        code = main(grpo_command(demo_model(tmp_path_factory), data_file, output, "--judge",
                                 "openai", "--judge-base-url", server.openai_base_url))
    assert code == 0
    assert (output / "model.safetensors").is_file() and (output / "judge-cache").is_dir()
    steps = log_history(output)
    assert [entry["step"] for entry in steps if "loss" in entry] == [1, 2]
    assert main(["plot", str(output)]) == 0
    png = output / "dynamics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_needs_a_trainer_state(tmp_path):
    with pytest.raises(NoTrainingLogError, match="no trainer_state.json"):
        plot_training_dynamics(tmp_path)


def test_dynamics_plot_has_whole_steps():
    import matplotlib.pyplot as plt
    from p2r_train.tracking.dynamics import dynamics_figure

    entries = [{"step": step, "loss": 1.0 / step, "tokens/perception": 3.0} for step in (1, 2, 3)]
    figure = dynamics_figure(entries, "three steps")
    axis = figure.axes[-1]
    low, high = axis.get_xlim()
    ticks = [tick for tick in axis.get_xticks() if low <= tick <= high]
    plt.close(figure)
    assert len(figure.axes) == 2 and ticks
    assert all(float(tick).is_integer() for tick in ticks), ticks
