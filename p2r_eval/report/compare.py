"""``compare``: a paired bootstrap test of two runs on the items both scored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from p2r_eval.core.stats import DEFAULT_TEST_RESAMPLES, PairedTest, paired_bootstrap_test
from p2r_eval.core.untrusted import visible_controls
from p2r_eval.eval.results import RunResults, Sample
from p2r_eval.eval.run_identity import data_difference
from p2r_eval.eval.runstore import RunStore
from p2r_eval.media.input_policies import describe_input_policy
from p2r_eval.report.measured import aggregate_for_task, read_run, run_folder
from p2r_eval.report.tables import LeaderboardError, in_column_order, task_labels


@dataclass(frozen=True)
class TaskComparison:
    task: str
    test: PairedTest
    n_content_differs: int = 0
    """Items left out because they share an id but not their content (different data)."""


def compare_runs(
    run_a: Path,
    run_b: Path,
    tasks: Sequence[str] | None = None,
    *,
    n_resamples: int = DEFAULT_TEST_RESAMPLES,
    seed: int = 0,
) -> list[TaskComparison]:
    """Paired bootstrap test per task both runs scored (or per task in ``tasks``)."""
    run_a, run_b = run_folder(run_a), run_folder(run_b)
    results_a, results_b = read_run(run_a), read_run(run_b)
    shared = [t for t in results_a.tasks if t in results_b.tasks]
    chosen = list(tasks) if tasks else in_column_order(shared)
    missing = [t for t in chosen if t not in shared]
    if missing:
        raise LeaderboardError(f"task(s) {', '.join(missing)} not in both runs (shared: {shared})")
    protocol = results_a.settings.protocol
    comparisons = []
    for task in chosen:
        samples_a = RunStore(run_a).load_samples(task, repair=False)
        samples_b = RunStore(run_b).load_samples(task, repair=False)
        differ = content_mismatches(samples_a, samples_b)
        if differ and not (samples_a.keys() & samples_b.keys()) - differ:
            raise LeaderboardError(
                f"{task}: the runs have no item in common: {len(differ)} items share an id but "
                f"differ in content ({data_difference_of(results_a, results_b, task)}); "
                "a paired test needs the same items")
        try:
            test = paired_bootstrap_test(
                [sample for key, sample in samples_a.items() if key not in differ],
                [sample for key, sample in samples_b.items() if key not in differ],
                aggregate_for_task(task, protocol),
                n_resamples=n_resamples,
                seed=seed,
            )
        except ValueError as error:
            raise LeaderboardError(f"{task}: {error}") from None
        comparisons.append(TaskComparison(task, test, len(differ)))
    return comparisons


def content_mismatches(
    samples_a: dict[str, Sample], samples_b: dict[str, Sample]
) -> set[str]:
    """Ids in both runs whose samples answer different items: their recorded content hashes
    differ (samples from before hashes were recorded pair by id)."""
    return {
        key for key in samples_a.keys() & samples_b.keys()
        if None not in (samples_a[key].item_sha256, samples_b[key].item_sha256)
        and samples_a[key].item_sha256 != samples_b[key].item_sha256
    }


def data_difference_of(results_a: RunResults, results_b: RunResults, task: str) -> str:
    """How two runs' data of ``task`` differ, in words."""
    return data_difference(results_a.tasks[task].data,
                           results_b.tasks[task].data) or "the same data files"


def settings_diff(results_a: RunResults, results_b: RunResults) -> list[str]:
    """The evaluation settings in which two runs differ, as ``name: A vs B``."""

    def flat(results: RunResults) -> dict[str, Any]:
        settings = results.settings
        return {
            "protocol": settings.protocol,
            "prompt style": settings.prompt_style,
            "inputs": describe_input_policy(settings.frame_policy),
            "decoding": settings.decoding,
            "limit": settings.limit,
        }

    a, b = flat(results_a), flat(results_b)
    differing = [f"{key}: {a[key]} vs {b[key]}" for key in a if a[key] != b[key]]
    for task in in_column_order([t for t in results_a.tasks if t in results_b.tasks]):
        data = data_difference(results_a.tasks[task].data, results_b.tasks[task].data)
        if data:
            differing.append(f"data of {task}: {data}")
    return differing


def render_comparison(run_a: Path, run_b: Path, comparisons: Sequence[TaskComparison]) -> str:
    """Plain-text report of :func:`compare_runs` (a markdown table plus notes)."""
    results_a, results_b = read_run(run_folder(run_a)), read_run(run_folder(run_b))
    labels = task_labels()
    headers = ["Benchmark", "Paired items", "A", "B", "A − B", "95% CI of A − B", "p (two-sided)"]
    cells = [
        [
            labels.get(c.task, c.task),
            str(c.test.n_paired),
            f"{100 * c.test.score_a:.1f}",
            f"{100 * c.test.score_b:.1f}",
            f"{100 * c.test.difference:+.1f}",
            f"[{100 * c.test.low:+.1f}, {100 * c.test.high:+.1f}]",
            _format_p(c.test.p_value),
        ]
        for c in comparisons
    ]
    lines = [
        visible_controls(f"A: {results_a.model.name} ({run_folder(run_a)})"),
        visible_controls(f"B: {results_b.model.name} ({run_folder(run_b)})"),
        "",
        tabulate(
            cells,
            headers,
            tablefmt="pipe",
            disable_numparse=True,
            colalign=["left"] + ["right"] * (len(headers) - 1),
        ),
        "",
    ]
    resamples = comparisons[0].test.n_resamples if comparisons else 0
    lines.append(
        f"Paired bootstrap over items ({resamples} resamples): each resample draws the same "
        "items for A and B; p is the two-sided probability of a difference at least this large "
        "if there were none. Only items scored in both runs are paired."
    )
    for c in comparisons:
        dropped = []
        if c.test.n_only_a or c.test.n_only_b:
            dropped.append(f"items only in A: {c.test.n_only_a}, only in B: {c.test.n_only_b}")
        if c.n_content_differs:
            dropped.append(f"{c.n_content_differs} items share an id but differ in content")
        if c.test.n_unscored:
            dropped.append(f"shared items unscored in A or B: {c.test.n_unscored}")
        if dropped:
            lines.append(f"- {labels.get(c.task, c.task)}: left out {'; '.join(dropped)}")
    differing = settings_diff(results_a, results_b)
    if differing:
        lines.append(visible_controls("Settings differ (A vs B): " + "; ".join(differing)))
    return "\n".join(lines)


def _format_p(p_value: float) -> str:
    return f"{p_value:.4f}" if p_value >= 0.0001 else f"{p_value:.1e}"
