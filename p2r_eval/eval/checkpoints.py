"""Evaluating a training run folder: every model of the run scored once, by step.

A run folder is what ``p2r-train`` (or any transformers/TRL trainer) writes: ``checkpoint-<step>``
folders and, once training ends, the final model at its root next to ``trainer_state.json``.
One rule gives every model of the run its step:

- ``checkpoint-<step>``: that step;
- the root model: the run's final step (``global_step`` of the root ``trainer_state.json``);
  left out when a checkpoint of the same step exists (the same weights);
- the starting model, named in ``starting_model.json`` (written by ``p2r-train``): step 0.

``p2r-eval --model RUN_DIR`` evaluates each of them into ``RUN_DIR/eval/<name>/``
(``checkpoint-<step>``, ``final-<step>``, ``starting-model``; a normal run folder: resumable,
so a model half evaluated is finished, never redone), skips those already evaluated with the
same settings, re-lists the folder after each model so that new checkpoints are picked up,
and then writes

    RUN_DIR/eval/leaderboards/main.md     one measured row per checkpoint ("step N")
    RUN_DIR/eval/scores_by_step.png       every benchmark against the step, with the paper's
                                          base model and VideoP2R as reference lines

A checkpoint still being written (no ``trainer_state.json`` yet; the Trainer writes it last)
is left for the next call. ``--watch SECONDS`` keeps polling for new checkpoints. A starting
model that does not load (moved, or a hub id offline) is skipped with a warning.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2r_eval.benchmarks.registry import load_task, own_leaderboards
from p2r_eval.eval.loop import EvalSettings, finished_run, run_evaluation
from p2r_eval.eval.results import TaskEntry
from p2r_eval.eval.run_identity import task_data_identity
from p2r_eval.eval.runstore import RunStore, RunStoreError
from p2r_eval.models.base import Backend, BackendError

log = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
REFERENCE_ROWS = ("Qwen2.5-VL-7B", "VideoP2R (Ours)")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


STARTING_MODEL_FILE = "starting_model.json"
TRAINER_STATE = "trainer_state.json"


@dataclasses.dataclass(frozen=True)
class RunModel:
    """One model of a training run: its step, what ``--model`` loads it from, and the name of
    its folder under ``RUN_DIR/eval``."""

    step: int
    model: str
    name: str


def is_checkpoint_run(path: Path) -> bool:
    """True for a training run folder: ``checkpoint-<step>`` folders, or a root
    ``trainer_state.json`` (a run whose final model was saved without checkpoints)."""
    return path.is_dir() and ((path / TRAINER_STATE).is_file() or any(
        CHECKPOINT_PATTERN.match(child.name) for child in path.iterdir() if child.is_dir()
    ))


def record_starting_model(run_dir: Path, model: str) -> None:
    """Note the model a training run starts from (its step 0) in the run folder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STARTING_MODEL_FILE).write_text(json.dumps({"model": model}) + "\n",
                                               encoding="utf-8")


def starting_model(run_dir: Path) -> str | None:
    """The model recorded by :func:`record_starting_model`, if any."""
    try:
        recorded = json.loads((run_dir / STARTING_MODEL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = recorded.get("model") if isinstance(recorded, dict) else None
    return model if isinstance(model, str) and model else None


def final_step(run_dir: Path) -> int | None:
    """The step of the run's root model (``global_step`` of the root trainer state), or
    ``None`` while there is no complete root model."""
    if not checkpoint_complete(run_dir):
        return None
    state = json.loads((run_dir / TRAINER_STATE).read_text(encoding="utf-8"))
    step = state.get("global_step") if isinstance(state, dict) else None
    return step if isinstance(step, int) and step >= 0 else None


def run_models(run_dir: Path, every: int = 0) -> list[RunModel]:
    """Every model of the run by increasing step (module docs); with ``every``, only those
    whose step is a multiple of it (step 0 always is)."""
    models = [RunModel(step, str(path), path.name) for step, path in list_checkpoints(run_dir)]
    start = starting_model(run_dir)
    if start is not None:
        models.append(RunModel(0, start, "starting-model"))
    final = final_step(run_dir)
    if final is not None and all(m.step != final for m in models):
        models.append(RunModel(final, str(run_dir), f"final-{final}"))
    return sorted((m for m in models if not every or m.step % every == 0),
                  key=lambda m: m.step)


def checkpoint_complete(checkpoint: Path) -> bool:
    """Config, weights and a readable trainer state: the Trainer has finished saving it (it
    writes trainer_state.json last; a kill while writing it leaves invalid JSON)."""
    has_weights = any(any(checkpoint.glob(pattern)) for pattern in WEIGHT_PATTERNS)
    return (checkpoint / "config.json").exists() and has_weights and _readable_json(
        checkpoint / "trainer_state.json")


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def list_checkpoints(run_dir: Path, every: int = 0) -> list[tuple[int, Path]]:
    """Finished checkpoints by increasing step (only steps that are multiples of ``every``)."""
    found = []
    for child in run_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(child.name)
        if match and child.is_dir() and checkpoint_complete(child):
            step = int(match.group(1))
            if not every or step % every == 0:
                found.append((step, child))
    return sorted(found)


def eval_dir(run_dir: Path) -> Path:
    return run_dir / "eval"


def evaluate_checkpoints(
    run_dir: Path,
    settings: EvalSettings,
    load_backend: Callable[[str], Backend],
    *,
    judge: Any = None,
    show_progress: bool = True,
    every: int = 0,
) -> list[tuple[int, Path]]:
    """Evaluate every finished checkpoint not yet evaluated; return (step, run folder) of all
    evaluated checkpoints. A checkpoint locked by another evaluator is skipped."""
    attempted: set[int] = set()
    loaded_tasks = [load_task(name, settings.data_root) for name in settings.tasks]
    task_data = {task.name: task_data_identity(task) for task in loaded_tasks}
    while True:
        pending = [m for m in run_models(run_dir, every) if m.step not in attempted]
        if not pending:
            break
        step, checkpoint, name = pending[0].step, pending[0].model, pending[0].name
        attempted.add(step)
        output = eval_dir(run_dir) / name
        checkpoint_settings = dataclasses.replace(settings, model_spec=checkpoint)
        if finished_run(RunStore(output).read_results(), checkpoint_settings, task_data,
                        judging=judge is not None):
            continue
        log.info("evaluating %s", checkpoint)
        try:
            backend = load_backend(checkpoint)
        except BackendError as error:
            if name != "starting-model":
                raise
            log.warning("no step-0 point: the starting model %s does not load (%s)",
                        checkpoint, error)
            continue
        try:
            run_evaluation(checkpoint_settings, backend, output, judge=judge,
                           show_progress=show_progress, loaded_tasks=loaded_tasks)
        except RunStoreError as error:
            log.warning("skipping %s: %s", name, error)
        finally:
            release(backend)
    return evaluated_checkpoints(run_dir, every)


def release(backend: Backend) -> None:
    """Free a backend's memory before the next checkpoint is loaded."""
    del backend
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def evaluated_checkpoints(run_dir: Path, every: int = 0) -> list[tuple[int, Path]]:
    """(step, eval run folder) of every model of the run with finished results, by step."""
    found = []
    for model in run_models(run_dir, every):
        step, output = model.step, eval_dir(run_dir) / model.name
        results = RunStore(output).read_results()
        if results is not None and results.finished_at:
            found.append((step, output))
    return found


def write_checkpoint_reports(run_dir: Path, evaluated: list[tuple[int, Path]]) -> list[Path]:
    """The leaderboard with a row per checkpoint and the scores-by-step plot."""
    from p2r_eval.report.leaderboard import write_leaderboards
    from p2r_eval.report.plots import plot_scores_by_step
    from p2r_eval.report.tables import load_table

    if not evaluated:
        return []
    folder = eval_dir(run_dir)
    scored = {task for _, run in evaluated for task in recorded_tasks(run)}
    tables = ["main", *(name for task, name in own_leaderboards().items() if task in scored)]
    paths = [path for name in tables
             for path in write_leaderboards([run for _, run in evaluated], folder / "leaderboards",
                                            name, names=[f"step {step}" for step, _ in evaluated])]
    table = load_table("main")
    columns = [column for name in tables for column in load_table(name).columns]
    scores = {column.label: [(step, _task_score(run, column.task)) for step, run in evaluated]
              for column in columns}
    references = {name: {column.label: _float(value) for column, value
                         in zip(table.columns, table.row(name).scores, strict=True)}
                  for name in REFERENCE_ROWS}
    paths.append(plot_scores_by_step(scores, references, folder / "scores_by_step.png"))
    return paths


def recorded_tasks(run: Path) -> dict[str, TaskEntry]:
    """The task entries of the run in ``run`` (none when it has no results yet)."""
    results = RunStore(run).read_results()
    return results.tasks if results is not None else {}


def _task_score(run: Path, task: str) -> float | None:
    entry = recorded_tasks(run).get(task)
    return entry.score if entry is not None else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def watch_checkpoints(run_dir: Path, interval_s: float, evaluate: Callable[[], Any]) -> None:
    """Call ``evaluate`` now and every ``interval_s`` seconds until interrupted (Ctrl-C)."""
    try:
        while True:
            evaluate()
            time.sleep(interval_s)
    except KeyboardInterrupt:
        log.info("stopped watching %s", run_dir)
