"""Two runs side by side on the same items: per task, the items both answered, those where one
run is right and the other wrong listed first, with the paired bootstrap test of
``p2r-eval compare``."""

from __future__ import annotations

from dataclasses import dataclass, field

from p2r_eval.core.stats import PairedTest
from p2r_eval.report.compare import compare_runs
from p2r_eval.report.tables import LeaderboardError
from p2r_eval.report.view.runs import RunView, TaskView
from p2r_eval.report.view.samples import CORRECT, WRONG, SampleView


@dataclass(frozen=True)
class SamplePair:
    id: str
    a: SampleView | None
    b: SampleView | None

    @property
    def disagree(self) -> bool:
        """One run right and the other wrong on this item."""
        statuses = {self.a.status if self.a else None, self.b.status if self.b else None}
        return statuses == {CORRECT, WRONG}

    @property
    def winner(self) -> str | None:
        """``"a"`` or ``"b"``: the run that is right where the other is wrong."""
        if not self.disagree:
            return None
        return "a" if self.a is not None and self.a.status == CORRECT else "b"


@dataclass(frozen=True)
class TaskPairs:
    name: str
    pairs: list[SamplePair]
    test: PairedTest | None
    test_problem: str | None

    @property
    def disagreements(self) -> int:
        return sum(pair.disagree for pair in self.pairs)


@dataclass
class RunComparison:
    run_a: RunView
    run_b: RunView
    tasks: list[TaskPairs]
    notes: list[str] = field(default_factory=list)


def pair_samples(task_a: TaskView, task_b: TaskView) -> list[SamplePair]:
    """The items of both runs (run A's order, then B's extra items), disagreements first."""
    by_id_b = {sample.id: sample for sample in task_b.samples}
    ids = [sample.id for sample in task_a.samples]
    ids += [sample.id for sample in task_b.samples if sample.id not in set(ids)]
    by_id_a = {sample.id: sample for sample in task_a.samples}
    pairs = [SamplePair(item_id, by_id_a.get(item_id), by_id_b.get(item_id)) for item_id in ids]
    return sorted(pairs, key=lambda pair: not pair.disagree)


def compare_run_views(run_a: RunView, run_b: RunView) -> RunComparison:
    tasks_b = {task.name: task for task in run_b.tasks}
    shared = [task for task in run_a.tasks if task.name in tasks_b]
    comparison = RunComparison(run_a, run_b, [])
    for task in shared:
        try:
            test, problem = compare_runs(run_a.root, run_b.root, [task.name])[0].test, None
        except LeaderboardError as error:
            test, problem = None, str(error)
        comparison.tasks.append(TaskPairs(task.name, pair_samples(task, tasks_b[task.name]),
                                          test, problem))
    if not shared:
        comparison.notes.append(f"{run_a.root} and {run_b.root} share no task")
    return comparison
