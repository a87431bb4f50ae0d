"""Leaderboards: the paper's tables as data, rendered to markdown with measured runs as rows.

The tables live in ``leaderboards/<name>.yaml`` (values exactly as printed, with provenance);
``leaderboards/<name>.md`` is generated from them by :func:`render_markdown` and checked
against it by the tests. The rules that decide what a reader sees are ours and unit-tested:

* values are shown in percent with one decimal, rounded half up from the decimal the run
  recorded; marks are computed on those displayed values;
* per column, **bold** marks the best and ``<u>underline</u>`` the second best value among the
  rows that compete, with dense ranking: tied rows share a mark and the next distinct value is
  second (so a row repeated under several headings can never push another out of second place);
* Avg is the mean of the seven benchmarks, shown only when all seven are present; paper rows
  keep the Avg the paper printed (a footnote says where it differs from the mean of the printed
  values), measured rows get the mean of their unrounded scores;
* every setting of a measured run that differs from the paper's evaluation gets a footnote.

Measured rows also carry 95% bootstrap confidence intervals from their per-item samples
(:mod:`p2r_eval.core.stats`), and ``p2r-eval compare`` runs a paired bootstrap test of two runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import p2r_leaderboards
import yaml
from tabulate import tabulate

from p2r_eval.benchmarks.protocols import PROTOCOLS, aggregation_for
from p2r_eval.benchmarks.registry import EXTRA_TASK_NAMES, TASK_NAMES
from p2r_eval.core.stats import (
    DEFAULT_CI_RESAMPLES,
    DEFAULT_TEST_RESAMPLES,
    ConfidenceInterval,
    GroupMeanAggregate,
    PairedTest,
    bootstrap_ci,
    mean_score,
    paired_bootstrap_test,
)
from p2r_eval.core.untrusted import escape_markdown, visible_controls
from p2r_eval.eval.run_identity import data_difference, partially_scored, uses_demo_suite
from p2r_eval.eval.runstore import RunStore, RunStoreError
from p2r_eval.media.input_policies import (
    PAPER_INPUT_POLICY,
    describe_input_policy,
    input_policy_label,
    recorded_input_policy,
)
from p2r_eval.report.plots import BarSeries, plot_benchmark_bars

LEADERBOARD_DIR = Path(p2r_leaderboards.__file__).resolve().parent
TABLE_NAMES = ("main", "ablation")
"""The paper's tables (``--table both``)."""
OWN_TABLES = {"toy": "toy"}
"""Tables of tasks outside the paper (task -> table): a run that scored the task gets a row."""
ONE_DECIMAL = Decimal("0.1")
BEST, SECOND = "best", "second"
CI_TOLERANCE_POINTS = 0.1
"""How far (percentage points) the bootstrap statistic on the samples may sit from the score
in results.json (which may be rounded) before the interval is withheld as not describing it."""


@dataclass(frozen=True)
class PaperSettings:
    """How the paper evaluated every row (Video-R1's evaluation script, vLLM)."""

    protocol: str = "video-r1"
    input_policy: str = PAPER_INPUT_POLICY
    max_new_tokens: int = 1024


PAPER = PaperSettings()


class LeaderboardError(ValueError):
    """A table file or a run folder cannot be used; the message names the file."""


# --------------------------------------------------------------------------- tables as data


@dataclass(frozen=True)
class Column:
    task: str
    label: str
    group: str


@dataclass(frozen=True)
class PaperRow:
    """A row as printed in the paper. ``scores`` follow the table's columns, None = '-'."""

    name: str
    scores: tuple[Decimal | None, ...]
    printed_avg: Decimal | None
    competes: bool = True
    prompt_style: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def computed_avg(self) -> Decimal | None:
        if any(score is None for score in self.scores):
            return None
        return round_one_decimal(sum(self.scores) / len(self.scores))  # type: ignore[arg-type]

    @property
    def avg(self) -> Decimal | None:
        return self.printed_avg if self.printed_avg is not None else self.computed_avg


@dataclass(frozen=True)
class Group:
    heading: str | None
    rows: tuple[PaperRow, ...]


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    provenance: str
    row_label: str
    units: str
    columns: tuple[Column, ...]
    groups: tuple[Group, ...]
    notes: tuple[str, ...] = ()
    delta_against: str | None = None
    plot_reference: tuple[str, ...] = ()

    @property
    def rows(self) -> tuple[PaperRow, ...]:
        return tuple(row for group in self.groups for row in group.rows)

    def row(self, name: str) -> PaperRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"table {self.name!r} has no row {name!r}")

    @property
    def delta_base(self) -> Decimal | None:
        """The Avg every Δ is measured against, or None when the table has no Δ column."""
        return self.row(self.delta_against).avg if self.delta_against else None


def load_table(name: str, directory: Path | None = None) -> Table:
    """Read ``<directory>/<name>.yaml`` (default: the repository's ``leaderboards/``)."""
    path = (directory or LEADERBOARD_DIR) / f"{name}.yaml"
    if not path.exists():
        known = ", ".join((*TABLE_NAMES, *OWN_TABLES.values()))
        raise LeaderboardError(f"no leaderboard table {name!r} ({path} missing; known: {known})")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        table = _table_from_data(data)
    except (KeyError, TypeError, ValueError) as error:
        raise LeaderboardError(f"{path}: {error}") from None
    if table.delta_against and table.delta_base is None:
        raise LeaderboardError(f"{path}: delta_against row {table.delta_against!r} has no Avg")
    return table


def _table_from_data(data: dict[str, Any]) -> Table:
    columns = tuple(Column(c["task"], c["label"], c["group"]) for c in data["columns"])
    groups = tuple(
        Group(group.get("heading"), tuple(_paper_row(row, len(columns)) for row in group["rows"]))
        for group in data["groups"]
    )
    return Table(
        name=data["table"],
        title=data["title"],
        provenance=data["provenance"],
        row_label=data.get("row_label", "Model"),
        units=data.get("units", ""),
        columns=columns,
        groups=groups,
        notes=tuple(data.get("notes", ())),
        delta_against=data.get("delta_against"),
        plot_reference=tuple(data.get("plot_reference", ())),
    )


def _paper_row(data: dict[str, Any], n_columns: int) -> PaperRow:
    name = data["name"]
    if len(data["scores"]) != n_columns:
        raise ValueError(f"row {name!r} has {len(data['scores'])} scores for {n_columns} columns")
    scores = tuple(_printed_value(value, name) for value in data["scores"])
    printed_avg = _printed_value(data.get("avg"), name)
    if printed_avg is not None and None in scores:
        raise ValueError(f"row {name!r} prints an Avg but misses a benchmark")
    return PaperRow(
        name=name,
        scores=scores,
        printed_avg=printed_avg,
        competes=bool(data.get("competes", True)),
        prompt_style=data.get("prompt_style"),
        notes=tuple(data.get("notes", ())),
    )


def _printed_value(value: Any, row: str) -> Decimal | None:
    if value is None:
        return None
    printed = Decimal(str(value))
    if printed != printed.quantize(ONE_DECIMAL):
        raise ValueError(f"row {row!r}: {value!r} has more than one decimal")
    return printed.quantize(ONE_DECIMAL)


# --------------------------------------------------------------------------- the rules


def round_one_decimal(value: float | Decimal) -> Decimal:
    """Percent as displayed: one decimal, half up, from the shortest decimal form of a float
    (so 35.05 shows as 35.1, as a reader rounding the recorded number would)."""
    return Decimal(str(value)).quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP)


def column_marks(values: Sequence[Decimal | None], competes: Sequence[bool]) -> list[str | None]:
    """``"best"``/``"second"``/None per entry: dense ranking over the competing values."""
    distinct = sorted({v for v, c in zip(values, competes, strict=True) if c and v is not None})
    best = distinct[-1] if distinct else None
    second = distinct[-2] if len(distinct) > 1 else None
    marks: list[str | None] = []
    for value, competing in zip(values, competes, strict=True):
        if not competing or value is None:
            marks.append(None)
        elif value == best:
            marks.append(BEST)
        elif value == second:
            marks.append(SECOND)
        else:
            marks.append(None)
    return marks


def format_value(value: Decimal | None, mark: str | None = None) -> str:
    if value is None:
        return "-"
    text = f"{value:.1f}"
    if mark == BEST:
        return f"**{text}**"
    if mark == SECOND:
        return f"<u>{text}</u>"
    return text


def format_delta(delta: Decimal | None) -> str:
    return "-" if delta is None else f"{delta:+.1f}"


# --------------------------------------------------------------------------- measured rows


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
    if task not in TASK_NAMES + EXTRA_TASK_NAMES or protocol not in PROTOCOLS:
        return mean_score
    return aggregation_for(task, protocol).statistic


def read_run(run_dir: Path) -> dict[str, Any]:
    """results.json of a run folder (or of the folder holding a given results.json)."""
    run_dir = Path(run_dir)
    try:
        results = RunStore(run_dir).read_results()
    except RunStoreError as error:
        raise LeaderboardError(str(error)) from None
    if results is None:
        raise LeaderboardError(f"{run_dir}: no results.json (is this a p2r-eval output folder?)")
    for key in ("model", "settings", "tasks"):
        if not isinstance(results.get(key), dict):
            raise LeaderboardError(f"{run_dir / 'results.json'}: missing or invalid {key!r}")
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
    name = name or str(results["model"].get("name") or results["model"].get("spec") or run_dir.name)
    if paper_prompt_style is None:
        paper_prompt_style = _paper_prompt_style(name)
    tasks: dict[str, dict[str, Any]] = results["tasks"]
    settings: dict[str, Any] = results["settings"]
    intervals, interval_notes = _task_intervals(run_dir, tasks, settings, n_resamples, seed)
    return MeasuredRow(
        name=name,
        run_dir=run_dir,
        scores={task: entry.get("score") for task, entry in tasks.items()},
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


def demo_suite_notes(settings: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> list[str]:
    if not uses_demo_suite(settings):
        return []
    return [DEMO_SUITE_NOTE.format(items=sum(entry.get("n", 0) for entry in tasks.values()))]


def _paper_prompt_style(name: str) -> str | None:
    for row in load_table("main").rows:
        if row.name.casefold() == name.casefold():
            return row.prompt_style
    return None


def settings_label(settings: dict[str, Any]) -> str:
    """Protocol, prompt style and inputs, e.g. ``video-r1, p2r prompt, video-r1 inputs`` or
    ``official, direct prompt, 32 frames``."""
    inputs = input_policy_label(settings.get("frame_policy") or {})
    return f"{settings.get('protocol', '?')}, {settings.get('prompt_style', '?')} prompt, {inputs}"


def setting_differences(settings: dict[str, Any], paper_prompt_style: str | None) -> list[str]:
    """One footnote per evaluation setting that differs from the paper's."""
    notes: list[str] = []
    protocol = settings.get("protocol")
    if protocol != PAPER.protocol:
        notes.append(f"protocol {protocol} (paper: {PAPER.protocol})")
    policy = settings.get("frame_policy") or {}
    if recorded_input_policy(policy) != PAPER.input_policy:
        paper_policy = describe_input_policy({"input_policy": PAPER.input_policy})
        notes.append(f"input policy {describe_input_policy(policy)} (paper: {paper_policy})")
    decoding = settings.get("decoding") or {}
    if not greedy_equivalent(decoding):
        notes.append(
            f"sampled decoding, temperature {decoding.get('temperature')}, top_p "
            f"{decoding.get('top_p')} (paper: greedy-equivalent, temperature 0.1 / top_p 0.001)"
        )
    if decoding.get("max_new_tokens") != PAPER.max_new_tokens:
        notes.append(
            f"at most {decoding.get('max_new_tokens')} new tokens (paper: {PAPER.max_new_tokens})"
        )
    style = settings.get("prompt_style")
    if paper_prompt_style and style != paper_prompt_style:
        notes.append(f"prompt style {style} (paper: {paper_prompt_style}, the model's own)")
    if settings.get("limit") is not None:
        notes.append(f"first {settings['limit']} items of each benchmark only (paper: all items)")
    return notes


def greedy_equivalent(decoding: dict[str, Any]) -> bool:
    """Greedy, or sampling so narrow it is greedy in effect (the paper's temperature 0.1 with
    top_p 0.001 keeps only the top token)."""
    if not decoding.get("do_sample", False):
        return True
    top_p, temperature = decoding.get("top_p"), decoding.get("temperature")
    return (top_p is not None and top_p <= 0.001) or temperature == 0


def run_state_notes(results: dict[str, Any]) -> list[str]:
    return [] if results.get("finished_at") else ["run not finished: scores are partial"]


def task_notes(tasks: dict[str, dict[str, Any]]) -> list[str]:
    """Footnotes for tasks with failed or unscored items (their cells may read '-')."""
    labels = _task_labels()
    notes = []
    for task, entry in tasks.items():
        label = labels.get(task, task)
        n, n_scored, n_errors = entry.get("n"), entry.get("n_scored"), entry.get("n_errors", 0)
        if entry.get("score") is None:
            notes.append(f"{label}: no score yet ({n_scored} of {n} items scored)")
        elif n_errors:
            notes.append(f"{label}: {n_errors} of {n} items failed (no model output)")
        if entry.get("complete") is False:
            notes.append(f"{label}: not every item has finished; the score covers those that did")
        if partially_scored(entry):
            notes.append(f"{label}: partial, {n_scored} of {n} items scored (the rest failed or "
                         "await a judge); shown in parentheses, not ranked, not in the Avg")
    return notes


def _task_labels() -> dict[str, str]:
    return {column.task: column.label for column in load_table("main").columns}


def _task_intervals(
    run_dir: Path,
    tasks: dict[str, dict[str, Any]],
    settings: dict[str, Any],
    n_resamples: int,
    seed: int,
) -> tuple[dict[str, ConfidenceInterval], dict[str, str]]:
    """95% CIs per task from the samples, withheld (with a note) when the samples do not
    reproduce the reported score: an interval must describe the number in the table."""
    store = RunStore(run_dir)
    intervals: dict[str, ConfidenceInterval] = {}
    notes: dict[str, str] = {}
    for task, entry in tasks.items():
        if entry.get("score") is None:
            continue
        try:
            samples = list(store.load_samples(task, repair=False).values())
        except RunStoreError as error:
            raise LeaderboardError(str(error)) from None
        if not any(sample.get("score") is not None for sample in samples):
            notes[task] = f"no scored samples in {store.samples_path(task)}"
            continue
        aggregate = aggregate_for_task(task, settings.get("protocol", ""))
        interval = bootstrap_ci(samples, aggregate, n_resamples=n_resamples, seed=seed)
        recomputed = 100 * interval.estimate
        if abs(recomputed - float(entry["score"])) > CI_TOLERANCE_POINTS:
            notes[task] = (
                f"no CI: the samples give {recomputed:.2f} as {aggregate.description}, "
                f"results.json reports {entry['score']}"
            )
            continue
        intervals[task] = interval
    return intervals, notes


# --------------------------------------------------------------------------- rendering


@dataclass
class _Line:
    """One body line of a rendered table before formatting."""

    name_cell: str
    values: list[Decimal | None]  # the columns, then Avg
    competes: bool
    notes: tuple[str, ...] = ()
    delta: Decimal | None = None
    heading: bool = False
    reference: bool = False  # the row every Δ is measured against: its Δ cell stays empty
    partial: frozenset[int] = frozenset()  # value indexes shown in parentheses, never ranked


def render_markdown(table: Table, measured_rows: Sequence[MeasuredRow] = ()) -> str:
    """The table as GitHub markdown, measured rows appended under their own heading."""
    lines = _paper_lines(table) + _measured_lines(table, measured_rows)
    rows_body = [line for line in lines if not line.heading]
    marks_by_column = [
        column_marks([line.values[i] for line in rows_body],
                     [line.competes and i not in line.partial for line in rows_body])
        for i in range(len(table.columns) + 1)
    ]
    numbered: dict[str, int] = {}
    cells: list[list[str]] = []
    body_index = 0
    for line in lines:
        if line.heading:
            cells.append([line.name_cell] + [""] * (len(table.columns) + 1 + _has_delta(table)))
            continue
        marks = [column[body_index] for column in marks_by_column]
        body_index += 1
        refs = [numbered.setdefault(note, len(numbered) + 1) for note in line.notes]
        sup = f"<sup>{','.join(str(r) for r in refs)}</sup>" if refs else ""
        row = [line.name_cell + sup] + [
            f"({format_value(v)})" if i in line.partial else format_value(v, m)
            for i, (v, m) in enumerate(zip(line.values, marks, strict=True))
        ]
        if _has_delta(table):
            row.append("" if line.reference else format_delta(line.delta))
        cells.append(row)
    parts = [
        f"# {escape_markdown(table.title)}",
        f"Source: {escape_markdown(table.provenance)}. {escape_markdown(table.units)}",
        _column_groups_line(table),
        _markdown_table(table, cells),
        "\n".join(f"- {note}" for note in table.notes),
    ]
    if numbered:
        parts.append(
            "Notes:\n\n" + "\n".join(f"{n}. {escape_markdown(t)}" for t, n in numbered.items())
        )
    if measured_rows:
        parts.append(_intervals_section(table, measured_rows))
    parts.append(
        f"<!-- Generated from leaderboards/{table.name}.yaml by p2r_eval.report.leaderboard; "
        "edit the YAML, not this file. -->"
    )
    return "\n\n".join(part for part in parts if part) + "\n"


def _has_delta(table: Table) -> int:
    return 1 if table.delta_against else 0


def _paper_lines(table: Table) -> list[_Line]:
    base = table.delta_base
    lines: list[_Line] = []
    for group in table.groups:
        if group.heading:
            lines.append(_Line(f"*{escape_markdown(group.heading)}*", [], False, heading=True))
        for row in group.rows:
            notes = row.notes + _avg_notes(row)
            is_base = row.name == table.delta_against
            delta = None if base is None or row.avg is None or is_base else row.avg - base
            lines.append(
                _Line(
                    escape_markdown(row.name),
                    [*row.scores, row.avg],
                    row.competes,
                    notes,
                    delta,
                    reference=is_base,
                )
            )
    return lines


def _avg_notes(row: PaperRow) -> tuple[str, ...]:
    computed = row.computed_avg
    if row.printed_avg is None or computed is None or computed == row.printed_avg:
        return ()
    return (
        f"Avg {row.printed_avg} as printed in the paper; the mean of the seven printed values "
        f"is {computed}. The printed Avg is kept.",
    )


def _measured_lines(table: Table, measured_rows: Sequence[MeasuredRow]) -> list[_Line]:
    if not measured_rows:
        return []
    base = table.delta_base
    lines = [_Line("*Measured with p2r-eval*", [], False, heading=True)]
    for measured in measured_rows:
        values = [
            None if v is None else round_one_decimal(v) for v in measured.values(table.columns)
        ]
        avg = measured.avg(table.columns)
        shown_avg = None if avg is None else round_one_decimal(avg)
        label = escape_markdown(measured.settings_label)
        where = "measured on the demo suite" if measured.demo_suite else "measured"
        name_cell = f"{escape_markdown(measured.name)} ({where}: {label})"
        delta = None if base is None or shown_avg is None else shown_avg - base
        partial = frozenset(i for i, column in enumerate(table.columns)
                            if column.task in measured.partial_tasks)
        lines.append(_Line(name_cell, [*values, shown_avg], not measured.demo_suite,
                           measured.footnotes, delta, partial=partial))
    return lines


def _column_groups_line(table: Table) -> str:
    groups: dict[str, list[str]] = {}
    for column in table.columns:
        groups.setdefault(column.group, []).append(column.label)
    return "Columns: " + "; ".join(
        f"{group}: {', '.join(labels)}" for group, labels in groups.items()
    )


def _markdown_table(table: Table, cells: list[list[str]]) -> str:
    headers = [table.row_label, *(c.label for c in table.columns), "Avg"]
    if table.delta_against:
        headers.append("Δ")
    align = ["left"] + ["right"] * (len(headers) - 1)
    return tabulate(cells, headers, tablefmt="pipe", colalign=align, disable_numparse=True)


def _intervals_section(table: Table, measured_rows: Sequence[MeasuredRow]) -> str:
    headers = ["Model", "Benchmark", "Score", "95% CI", "Items scored", "Excluded (no score)"]
    cells = []
    notes = []
    for measured in measured_rows:
        for column in table.columns:
            score = measured.scores.get(column.task)
            if score is None:
                continue
            interval = measured.intervals.get(column.task)
            if interval is None:
                ci, used, excluded = "-", "-", "-"
                notes.append(
                    f"{escape_markdown(measured.name)}, {column.label}: "
                    f"{escape_markdown(measured.interval_notes.get(column.task, 'no CI'))}"
                )
            else:
                ci = f"[{100 * interval.low:.1f}, {100 * interval.high:.1f}]"
                used, excluded = str(interval.n_used), str(interval.n_excluded)
            cells.append(
                [escape_markdown(measured.name), column.label, f"{score:.1f}", ci, used, excluded]
            )
    resamples = {i.n_resamples for m in measured_rows for i in m.intervals.values()}
    method = (
        "Percentile bootstrap over items"
        + (f" ({', '.join(str(r) for r in sorted(resamples))} resamples)" if resamples else "")
        + ". Items without a score (generation errors, judge pending) are excluded before "
        "resampling. VSI-Bench under the video-r1 protocol resamples items and recomputes "
        "(accuracy mean + MRA mean) / 2; every other benchmark is a plain mean."
    )
    body = tabulate(
        cells,
        headers,
        tablefmt="pipe",
        disable_numparse=True,
        colalign=["left", "left", "right", "right", "right", "right"],
    )
    parts = ["## Measured rows: 95% bootstrap confidence intervals", method, body]
    if notes:
        parts.append("\n".join(f"- {note}" for note in notes))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- files and plots


def tables_of_run(results: dict[str, Any]) -> list[str]:
    """The tables a run is a row of: the paper's main table, and the own table of each
    non-paper task it scored (the toy suite's)."""
    return ["main", *(table for task, table in OWN_TABLES.items() if task in results["tasks"])]


def write_leaderboards(
    run_dirs: Sequence[Path],
    out_dir: Path,
    table: str = "main",
    names: Sequence[str] | None = None,
    *,
    n_resamples: int = DEFAULT_CI_RESAMPLES,
    seed: int = 0,
) -> list[Path]:
    """Write ``<table>.md`` with the runs as measured rows (no runs: the paper's table alone,
    which is how ``leaderboards/*.md`` are regenerated) and, when there are runs,
    ``<table>_bars.png`` (measured rows against the paper's). The perception-probe figure is
    drawn by ``p2r-eval probe`` (:func:`p2r_eval.report.plots.plot_probe`)."""
    loaded = load_table(table)
    rows = measured_rows(run_dirs, names, n_resamples, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown_path = out_dir / f"{table}.md"
    markdown_path.write_text(render_markdown(loaded, rows), encoding="utf-8")
    paths = [markdown_path]
    if rows:
        paths.append(plot_table_bars(loaded, rows, out_dir / f"{table}_bars.png"))
    return paths


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


def plot_table_bars(table: Table, measured_rows: Sequence[MeasuredRow], out_path: Path) -> Path:
    """Measured rows next to the table's reference rows (its ``plot_reference``)."""
    benchmarks = [column.label for column in table.columns] + ["Avg"]
    series = [
        BarSeries(
            f"{name} (paper)", [_float(v) for v in (*table.row(name).scores, table.row(name).avg)]
        )
        for name in table.plot_reference
    ]
    series += [measured_bar_series(table, measured) for measured in measured_rows]
    title = f"{table.title} — measured rows vs the paper ({table.provenance})"
    return plot_benchmark_bars(benchmarks, series, out_path, title=title)


def measured_bar_series(table: Table, measured: MeasuredRow) -> BarSeries:
    """A measured row's bars: partial task scores are left out (no bar drawn as if whole),
    and a demo-suite row says so in its label (and has no Avg bar)."""
    values = [
        None if column.task in measured.partial_tasks else value
        for column, value in zip(table.columns, measured.values(table.columns), strict=True)
    ]
    intervals = [
        None if value is None else _percent_interval(measured.intervals.get(column.task))
        for column, value in zip(table.columns, values, strict=True)
    ]
    where = "measured on the demo suite, not the benchmarks" if measured.demo_suite else "measured"
    return BarSeries(f"{measured.name} ({where})", [*values, measured.avg(table.columns)],
                     measured=True, intervals=[*intervals, None])


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _percent_interval(interval: ConfidenceInterval | None) -> tuple[float, float] | None:
    return None if interval is None else (100 * interval.low, 100 * interval.high)


# --------------------------------------------------------------------------- compare


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
    shared = [t for t in results_a["tasks"] if t in results_b["tasks"]]
    chosen = list(tasks) if tasks else _in_column_order(shared)
    missing = [t for t in chosen if t not in shared]
    if missing:
        raise LeaderboardError(f"task(s) {', '.join(missing)} not in both runs (shared: {shared})")
    protocol = results_a["settings"].get("protocol", "")
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
    samples_a: dict[str, dict[str, Any]], samples_b: dict[str, dict[str, Any]]
) -> set[str]:
    """Ids in both runs whose samples answer different items: their recorded content hashes
    differ (samples from before hashes were recorded pair by id)."""
    return {
        key for key in samples_a.keys() & samples_b.keys()
        if None not in (samples_a[key].get("item_sha256"), samples_b[key].get("item_sha256"))
        and samples_a[key]["item_sha256"] != samples_b[key]["item_sha256"]
    }


def data_difference_of(results_a: dict[str, Any], results_b: dict[str, Any], task: str) -> str:
    """How two runs' data of ``task`` differ, in words."""
    return data_difference(results_a["tasks"][task].get("data"),
                           results_b["tasks"][task].get("data")) or "the same data files"


def _in_column_order(tasks: Sequence[str]) -> list[str]:
    order = [column.task for column in load_table("main").columns]
    return sorted(tasks, key=lambda t: (order.index(t) if t in order else len(order), t))


def settings_diff(results_a: dict[str, Any], results_b: dict[str, Any]) -> list[str]:
    """The evaluation settings in which two runs differ, as ``name: A vs B``."""

    def flat(results: dict[str, Any]) -> dict[str, Any]:
        settings = results["settings"]
        return {
            "protocol": settings.get("protocol"),
            "prompt style": settings.get("prompt_style"),
            "inputs": describe_input_policy(settings.get("frame_policy") or {}),
            "decoding": settings.get("decoding"),
            "limit": settings.get("limit"),
        }

    a, b = flat(results_a), flat(results_b)
    differing = [f"{key}: {a[key]} vs {b[key]}" for key in a if a[key] != b[key]]
    for task in _in_column_order([t for t in results_a["tasks"] if t in results_b["tasks"]]):
        data = data_difference(results_a["tasks"][task].get("data"),
                               results_b["tasks"][task].get("data"))
        if data:
            differing.append(f"data of {task}: {data}")
    return differing


def render_comparison(run_a: Path, run_b: Path, comparisons: Sequence[TaskComparison]) -> str:
    """Plain-text report of :func:`compare_runs` (a markdown table plus notes)."""
    results_a, results_b = read_run(run_folder(run_a)), read_run(run_folder(run_b))
    labels = _task_labels()
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
        visible_controls(f"A: {results_a['model'].get('name')} ({run_folder(run_a)})"),
        visible_controls(f"B: {results_b['model'].get('name')} ({run_folder(run_b)})"),
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


# --------------------------------------------------------------------------- command line

LEADERBOARD_HELP = """\
Render the paper's tables as markdown, with runs added as measured rows.

examples:
  p2r-eval leaderboard                                # the paper's main table to stdout
  p2r-eval leaderboard runs/p2r-7b --as "VideoP2R (ours, re-run)" --out boards/
  p2r-eval leaderboard runs/a runs/b --table ablation --out boards/
  p2r-eval leaderboard --table both --out leaderboards  # regenerate the committed tables

With --out, writes <table>.md and, with runs, <table>_bars.png (measured rows vs the paper,
with 95% CI whiskers); without --out, prints the markdown. The perception-probe figure comes
from `p2r-eval probe`.
"""

COMPARE_HELP = """\
Paired bootstrap test of two runs on the items both scored: is A's gain over B real?

examples:
  p2r-eval compare runs/p2r-7b runs/qwen-7b
  p2r-eval compare runs/a runs/b --tasks vsibench,mvbench --resamples 20000
"""


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``leaderboard`` and ``compare`` on the p2r-eval command line."""
    board = subparsers.add_parser(
        "leaderboard",
        help="render the paper's tables with runs as measured rows",
        description=LEADERBOARD_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    board.add_argument(
        "results",
        nargs="*",
        type=Path,
        metavar="RESULTS",
        help="run output folders (or their results.json)",
    )
    board.add_argument(
        "--table",
        choices=[*TABLE_NAMES, *OWN_TABLES.values(), "both"],
        default="main",
        help="which table (default: main)",
    )
    board.add_argument(
        "--as",
        dest="names",
        action="append",
        default=[],
        metavar="NAME",
        help="row name for the run at the same position (repeatable)",
    )
    board.add_argument("--out", type=Path, help="folder for the markdown and PNGs")
    board.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_CI_RESAMPLES,
        help=f"bootstrap resamples for CIs (default {DEFAULT_CI_RESAMPLES})",
    )
    board.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    board.set_defaults(func=run_leaderboard_command)

    compare = subparsers.add_parser(
        "compare",
        help="paired bootstrap test between two runs",
        description=COMPARE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("run_a", type=Path, metavar="RUN_A")
    compare.add_argument("run_b", type=Path, metavar="RUN_B")
    compare.add_argument("--tasks", help="comma-separated tasks (default: all both runs scored)")
    compare.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_TEST_RESAMPLES,
        help=f"bootstrap resamples (default {DEFAULT_TEST_RESAMPLES})",
    )
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    compare.set_defaults(func=run_compare_command)


def run_leaderboard_command(args: argparse.Namespace) -> int:
    tables = list(TABLE_NAMES) if args.table == "both" else [args.table]
    try:
        for table in tables:
            if args.out:
                paths = write_leaderboards(
                    args.results, args.out, table, args.names,
                    n_resamples=args.resamples, seed=args.seed,
                )  # fmt: skip
                print("\n".join(str(path) for path in paths))
            else:
                rows = measured_rows(args.results, args.names, args.resamples, args.seed)
                print(render_markdown(load_table(table), rows))
    except (LeaderboardError, RunStoreError) as error:
        print(f"p2r-eval leaderboard: {error}", file=sys.stderr)
        return 2
    return 0


def run_compare_command(args: argparse.Namespace) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    try:
        comparisons = compare_runs(
            args.run_a, args.run_b, tasks, n_resamples=args.resamples, seed=args.seed
        )
        print(render_comparison(args.run_a, args.run_b, comparisons))
    except (LeaderboardError, RunStoreError) as error:
        print(f"p2r-eval compare: {error}", file=sys.stderr)
        return 2
    return 0
