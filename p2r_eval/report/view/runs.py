"""A run folder read for the viewer: results, per-task samples with their items, confidence
intervals and the leaderboard row, all through the functions the run and the leaderboard use."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from p2r_eval.benchmarks.formats.errors import AnnotationError
from p2r_eval.benchmarks.registry import load_task
from p2r_eval.core.items import Item
from p2r_eval.core.stats import ConfidenceInterval
from p2r_eval.eval.results import RunResults, RunSettings, Sample, TaskEntry
from p2r_eval.eval.runstore import RunStore
from p2r_eval.media.video import FramePolicy
from p2r_eval.report.measured import MeasuredRow, measured_row_from_run, read_run
from p2r_eval.report.view.samples import FAILURE_KINDS, STATUSES, SampleView, build_sample_view


@dataclass(frozen=True)
class TaskView:
    """One task of a run: its results.json entry and its samples in task order.
    ``annotations_problem`` says why questions, references and frames are not shown."""

    name: str
    entry: TaskEntry
    samples: list[SampleView]
    interval: ConfidenceInterval | None = None
    interval_note: str | None = None
    annotations_problem: str | None = None

    def status_counts(self) -> dict[str, int]:
        counts = Counter(sample.status for sample in self.samples)
        return {status: counts[status] for status in STATUSES}

    def failure_counts(self) -> dict[str, int]:
        counts = Counter(kind for sample in self.samples for kind in sample.failure_kinds)
        return {kind: counts[kind] for kind in FAILURE_KINDS}

    def category_counts(self) -> dict[str, int]:
        counts = Counter(category for sample in self.samples for category in sample.categories)
        return {category: counts[category] for category in self.entry.breakdown}


@dataclass(frozen=True)
class RunView:
    root: Path
    results: RunResults
    tasks: list[TaskView]
    row: MeasuredRow
    frame_policy: FramePolicy | None
    frame_policy_problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def settings(self) -> RunSettings:
        return self.results.settings


def recorded_frame_policy(settings: RunSettings) -> FramePolicy:
    """The frame policy a run recorded, as the object that samples frames again."""
    recorded = settings.frame_policy
    known = {f.name for f in fields(FramePolicy)}
    unknown = sorted(set(recorded) - known)
    if unknown:
        raise ValueError(f"the run's frame policy has settings this version does not know: "
                         f"{', '.join(unknown)}")
    return FramePolicy(**recorded)


def task_items(task: str, settings: RunSettings, source_format: str | None
               ) -> dict[str, Item]:
    """The run's items of ``task`` by id, from the data root the run recorded."""
    data_root = settings.data_root
    loaded = load_task(task, Path(data_root) if data_root else None, source_format)
    return {item.id: item for item in loaded.items}


def ordered_records(records: dict[str, Sample], items: Mapping[str, Item]) -> list[Sample]:
    """Samples in task order (the annotation file's), then any the annotations lack."""
    in_task = [records[item_id] for item_id in items if item_id in records]
    return in_task + [record for key, record in records.items() if key not in items]


def read_task_view(root: Path, task: str, entry: TaskEntry, settings: RunSettings,
                   row: MeasuredRow) -> TaskView:
    records = RunStore(root).load_samples(task, repair=False)
    verdicts = RunStore(root).read_verdicts(task)
    try:
        items = task_items(task, settings, entry.source_format)
        problem = None
    except (AnnotationError, OSError, ValueError) as error:
        items, problem = {}, f"annotations not found ({error})"
    breakdown_keys = list(entry.breakdown)
    samples = [
        build_sample_view(task, position, record, items.get(str(record.id)),
                          prompt_style=settings.prompt_style,
                          breakdown_keys=breakdown_keys,
                          sufficiency=verdicts.get(str(record.id)))
        for position, record in enumerate(ordered_records(records, items))
    ]
    return TaskView(task, entry, samples, row.intervals.get(task),
                    row.interval_notes.get(task), problem)


def read_run_view(root: Path) -> RunView:
    """Everything the viewer shows of the run folder ``root``."""
    root = Path(root)
    results = read_run(root)
    row = measured_row_from_run(root)
    settings = results.settings
    tasks = [read_task_view(root, task, entry, settings, row)
             for task, entry in results.tasks.items()]
    try:
        policy, policy_problem = recorded_frame_policy(settings), None
    except (TypeError, ValueError) as error:
        policy, policy_problem = None, f"frames not shown: {error}"
    return RunView(root, results, tasks, row, policy, policy_problem, list(row.footnotes))

