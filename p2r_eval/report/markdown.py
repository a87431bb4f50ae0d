"""The tables rendered as GitHub markdown, measured rows under their own heading, with the
measured rows' confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tabulate import tabulate

from p2r_eval.core.untrusted import escape_markdown
from p2r_eval.report.measured import MeasuredRow
from p2r_eval.report.tables import (
    PaperRow,
    Table,
    column_marks,
    format_delta,
    format_value,
    round_one_decimal,
)


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
