"""A picture of a run's training dynamics, from the log history the trainer keeps.

Reads ``trainer_state.json`` (written at the end of a run, and into every
``checkpoint-<step>`` folder while it goes) and draws one panel per group of metrics that the
run logged: loss, reward per process, advantage collapse, think-answer mismatch, segment
lengths, token accuracy (SFT).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from p2r_train.tracking.checkpoints import TRAINER_STATE, newest_complete_checkpoint

PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("loss",)),
    ("reward", ("rewards/perception/mean", "rewards/reasoning/mean", "reward")),
    ("advantage collapse (share of groups)",
     ("collapse/perception", "collapse/reasoning", "collapse/total")),
    ("think-answer mismatch rate", ("think_answer_mismatch",)),
    ("segment length (tokens)", ("tokens/perception", "tokens/reasoning")),
    ("token accuracy", ("mean_token_accuracy",)),
)


class NoTrainingLogError(FileNotFoundError):
    """The run folder holds no trainer_state.json with logged steps."""


def trainer_state_file(run_dir: Path) -> Path:
    """``run_dir/trainer_state.json``, else the newest checkpoint's."""
    final = run_dir / TRAINER_STATE
    if final.is_file():
        return final
    checkpoint = newest_complete_checkpoint(run_dir)
    if checkpoint is None:
        raise NoTrainingLogError(f"{run_dir}: no trainer_state.json (in the folder or a "
                                 "checkpoint)")
    return checkpoint / TRAINER_STATE


def log_history(run_dir: Path) -> list[dict[str, Any]]:
    """The per-step log entries of a run (those with a ``step``)."""
    state = json.loads(trainer_state_file(Path(run_dir)).read_text())
    entries = [e for e in state.get("log_history", []) if "step" in e]
    if not entries:
        raise NoTrainingLogError(f"{run_dir}: the trainer state has no logged steps")
    return entries


def series(entries: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of ``key`` where it was logged as a number."""
    points = [(e["step"], e[key]) for e in entries if isinstance(e.get(key), int | float)]
    return [p[0] for p in points], [float(p[1]) for p in points]


def dynamics_figure(entries: list[dict[str, Any]], title: str) -> Any:
    """A matplotlib figure with one panel per group of metrics logged in ``entries``,
    against whole steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [(name, keys) for name, keys in PANELS
              if any(series(entries, key)[0] for key in keys)]
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True,
                                squeeze=False)
    for axis, (name, keys) in zip(axes[:, 0], panels, strict=True):
        for key in keys:
            steps, values = series(entries, key)
            if steps:
                axis.plot(steps, values, marker="o", markersize=3, label=key)
        axis.set_title(name, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("step")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def plot_training_dynamics(run_dir: Path, output: Path | None = None) -> Path:
    """Draw the panels the run has data for into a PNG (default ``run_dir/dynamics.png``)."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    figure = dynamics_figure(log_history(run_dir), f"training dynamics: {run_dir.name}")
    output = Path(output) if output is not None else run_dir / "dynamics.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output
