"""Measured rows: a run folder as a table row, with its footnotes and 95% bootstrap confidence
intervals from its per-item samples (:mod:`p2r_eval.core.stats`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2r_eval.benchmarks.protocols import PROTOCOLS, aggregation_for
from p2r_eval.benchmarks.registry import known_task_names, own_leaderboards
from p2r_eval.core.stats import (
    DEFAULT_CI_RESAMPLES,
    ConfidenceInterval,
    GroupMeanAggregate,
    bootstrap_ci,
    mean_score,
)
from p2r_eval.eval.results import RunResults, RunSettings, TaskEntry
from p2r_eval.eval.run_identity import partially_scored, uses_demo_suite
from p2r_eval.eval.runstore import RunStore, RunStoreError
from p2r_eval.media.input_policies import (
    describe_input_policy,
    input_policy_label,
    recorded_input_policy,
)
from p2r_eval.report.tables import (
    PAPER,
    Column,
    LeaderboardError,
    load_table,
    task_labels,
)

CI_TOLERANCE_POINTS = 0.1
"""How far (percentage points) the bootstrap statistic on the samples may sit from the score
in results.json (which may be rounded) before the interval is withheld as not describing it."""


@dataclass(frozen=True)
class MeasuredRow:
    """A run added to a table. ``scores`` are percent by task, None where the run has none."""

    name: str
    run_dir: Path
    scores: dict[str, float | None]
    settings_label: str
    footnotes: tuple[str, ...] = ()
    intervals: dict[str, ConfidenceInterval] = field(default_factory=dict)
    interval_notes: dict[str, str] = field(default_factory=dict)
    demo_suite: bool = False
    partial_tasks: frozenset[str] = frozenset()
    """Tasks whose score covers only part of their items (judge pending, unfinished)."""

    def values(self, columns: Sequence[Column]) -> list[float | None]:
        return [self.scores.get(column.task) for column in columns]

    def avg(self, columns: Sequence[Column]) -> float | None:
        """The mean over the benchmarks; None unless every one is fully scored on the real
        benchmarks (a demo-suite or partial score is not averaged into a paper-like Avg)."""
        values = self.values(columns)
        if self.demo_suite or any(value is None for value in values):
            return None
        if any(column.task in self.partial_tasks for column in columns):
            return None
        return sum(values) / len(values)  # type: ignore[arg-type]


def aggregate_for_task(task: str, protocol: str) -> GroupMeanAggregate:
    """The statistic a task's reported score is (its aggregation in
    :mod:`p2r_eval.benchmarks.protocols`),
    recomputed from its item samples; the plain mean for a task or protocol p2r does not know
    (an interval that does not reproduce the reported score is withheld)."""
    if task not in known_task_names() or protocol not in PROTOCOLS:
        return mean_score
    return aggregation_for(task, protocol).statistic


def read_run(run_dir: Path) -> RunResults:
    """results.json of a run folder (or of the folder holding a given results.json)."""
    run_dir = Path(run_dir)
    try:
        results = RunStore(run_dir).read_results()
    except RunStoreError as error:
        raise LeaderboardError(str(error)) from None
    if results is None:
        raise LeaderboardError(f"{run_dir}: no results.json (is this a p2r-eval output folder?)")
    return results


def run_folder(path: Path) -> Path:
    path = Path(path)
    return path.parent if path.name == "results.json" else path


def measured_row_from_run(
    run_dir: Path,
    name: str | None = None,
    *,
    paper_prompt_style: str | None = None,
    n_resamples: int = DEFAULT_CI_RESAMPLES,
    seed: int = 0,
) -> MeasuredRow:
    """A table row from a run folder: its task scores, settings, footnotes and 95% CIs.

    ``paper_prompt_style`` is the prompt style the paper used for this model; by default it
    is looked up by row name in the main table (e.g. ``p2r`` for "VideoP2R (Ours)").
    """
    run_dir = run_folder(run_dir)
    results = read_run(run_dir)
    name = name or results.model.name or results.model.spec or run_dir.name
    if paper_prompt_style is None:
        paper_prompt_style = _paper_prompt_style(name)
    tasks, settings = results.tasks, results.settings
    intervals, interval_notes = _task_intervals(run_dir, tasks, settings, n_resamples, seed)
    return MeasuredRow(
        name=name,
        run_dir=run_dir,
        scores={task: entry.score for task, entry in tasks.items()},
        settings_label=settings_label(settings),
        footnotes=tuple(
            demo_suite_notes(settings, tasks)
            + setting_differences(settings, paper_prompt_style)
            + run_state_notes(results)
            + task_notes(tasks)
        ),
        intervals=intervals,
        interval_notes=interval_notes,
        demo_suite=uses_demo_suite(settings),
        partial_tasks=frozenset(task for task, entry in tasks.items() if partially_scored(entry)),
    )


DEMO_SUITE_NOTE = (
    "measured on the built-in demo suite ({items} synthetic items in all), not on the "
    "benchmarks: not comparable with the paper's rows, not ranked, no Avg"
)


def demo_suite_notes(settings: RunSettings, tasks: dict[str, TaskEntry]) -> list[str]:
    if not uses_demo_suite(settings):
        return []
    return [DEMO_SUITE_NOTE.format(items=sum(entry.n for entry in tasks.values()))]


def _paper_prompt_style(name: str) -> str | None:
    for row in load_table("main").rows:
        if row.name.casefold() == name.casefold():
            return row.prompt_style
    return None


def settings_label(settings: RunSettings) -> str:
    """Protocol, prompt style and inputs, e.g. ``video-r1, p2r prompt, video-r1 inputs`` or
    ``official, direct prompt, 32 frames``."""
    inputs = input_policy_label(settings.frame_policy)
    return f"{settings.protocol}, {settings.prompt_style} prompt, {inputs}"


def setting_differences(settings: RunSettings, paper_prompt_style: str | None) -> list[str]:
    """One footnote per evaluation setting that differs from the paper's."""
    notes: list[str] = []
    protocol = settings.protocol
    if protocol != PAPER.protocol:
        notes.append(f"protocol {protocol} (paper: {PAPER.protocol})")
    policy = settings.frame_policy
    if recorded_input_policy(policy) != PAPER.input_policy:
        paper_policy = describe_input_policy({"input_policy": PAPER.input_policy})
        notes.append(f"input policy {describe_input_policy(policy)} (paper: {paper_policy})")
    decoding = settings.decoding
    if not greedy_equivalent(decoding):
        notes.append(
            f"sampled decoding, temperature {decoding.get('temperature')}, top_p "
            f"{decoding.get('top_p')} (paper: greedy-equivalent, temperature 0.1 / top_p 0.001)"
        )
    if decoding.get("max_new_tokens") != PAPER.max_new_tokens:
        notes.append(
            f"at most {decoding.get('max_new_tokens')} new tokens (paper: {PAPER.max_new_tokens})"
        )
    style = settings.prompt_style
    if paper_prompt_style and style != paper_prompt_style:
        notes.append(f"prompt style {style} (paper: {paper_prompt_style}, the model's own)")
    if settings.limit is not None:
        notes.append(f"first {settings.limit} items of each benchmark only (paper: all items)")
    return notes


def greedy_equivalent(decoding: dict[str, Any]) -> bool:
    """Greedy, or sampling so narrow it is greedy in effect (the paper's temperature 0.1 with
    top_p 0.001 keeps only the top token)."""
    if not decoding.get("do_sample", False):
        return True
    top_p, temperature = decoding.get("top_p"), decoding.get("temperature")
    return (top_p is not None and top_p <= 0.001) or temperature == 0


def run_state_notes(results: RunResults) -> list[str]:
    return [] if results.finished_at else ["run not finished: scores are partial"]


def task_notes(tasks: dict[str, TaskEntry]) -> list[str]:
    """Footnotes for tasks with failed or unscored items (their cells may read '-')."""
    labels = task_labels()
    notes = []
    for task, entry in tasks.items():
        label = labels.get(task, task)
        n, n_scored, n_errors = entry.n, entry.n_scored, entry.n_errors
        if entry.score is None:
            notes.append(f"{label}: no score yet ({n_scored} of {n} items scored)")
        elif n_errors:
            notes.append(f"{label}: {n_errors} of {n} items failed (no model output)")
        if entry.complete is False:
            notes.append(f"{label}: not every item has finished; the score covers those that did")
        if partially_scored(entry):
            notes.append(f"{label}: partial, {n_scored} of {n} items scored (the rest failed or "
                         "await a judge); shown in parentheses, not ranked, not in the Avg")
    return notes



def _task_intervals(
    run_dir: Path,
    tasks: dict[str, TaskEntry],
    settings: RunSettings,
    n_resamples: int,
    seed: int,
) -> tuple[dict[str, ConfidenceInterval], dict[str, str]]:
    """95% CIs per task from the samples, withheld (with a note) when the samples do not
    reproduce the reported score: an interval must describe the number in the table."""
    store = RunStore(run_dir)
    intervals: dict[str, ConfidenceInterval] = {}
    notes: dict[str, str] = {}
    for task, entry in tasks.items():
        if entry.score is None:
            continue
        try:
            samples = list(store.load_samples(task, repair=False).values())
        except RunStoreError as error:
            raise LeaderboardError(str(error)) from None
        if not any(sample.score is not None for sample in samples):
            notes[task] = f"no scored samples in {store.samples_path(task)}"
            continue
        aggregate = aggregate_for_task(task, settings.protocol)
        interval = bootstrap_ci(samples, aggregate, n_resamples=n_resamples, seed=seed)
        recomputed = 100 * interval.estimate
        if abs(recomputed - float(entry.score)) > CI_TOLERANCE_POINTS:
            notes[task] = (
                f"no CI: the samples give {recomputed:.2f} as {aggregate.description}, "
                f"results.json reports {entry.score}"
            )
            continue
        intervals[task] = interval
    return intervals, notes



def tables_of_run(results: RunResults) -> list[str]:
    """The tables a run is a row of: the paper's main table, and the own table of each
    non-paper task it scored that names one in its YAML (the toy suite's)."""
    return ["main", *(table for task, table in own_leaderboards().items()
                      if task in results.tasks)]



def measured_rows(
    run_dirs: Sequence[Path], names: Sequence[str] | None, n_resamples: int, seed: int
) -> list[MeasuredRow]:
    """Rows for runs, the i-th name (when given) naming the i-th run."""
    names = list(names or [])
    if len(names) > len(run_dirs):
        raise LeaderboardError(f"{len(names)} names (--as) given for {len(run_dirs)} runs")
    return [
        measured_row_from_run(
            run_dir, names[i] if i < len(names) else None, n_resamples=n_resamples, seed=seed
        )
        for i, run_dir in enumerate(run_dirs)
    ]
