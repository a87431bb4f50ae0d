"""The paper's tables as data (``leaderboards/<name>.yaml``) and the rules that decide what a
reader sees.

The tables live in ``leaderboards/<name>.yaml`` (values exactly as printed, with provenance);
``leaderboards/<name>.md`` is generated from them by :func:`p2r_eval.report.markdown.
render_markdown` and checked against it by the tests. The rules are ours and unit-tested:

* values are shown in percent with one decimal, rounded half up from the decimal the run
  recorded; marks are computed on those displayed values;
* per column, **bold** marks the best and ``<u>underline</u>`` the second best value among the
  rows that compete, with dense ranking: tied rows share a mark and the next distinct value is
  second (so a row repeated under several headings can never push another out of second place);
* Avg is the mean of the seven benchmarks, shown only when all seven are present; paper rows
  keep the Avg the paper printed (a footnote says where it differs from the mean of the printed
  values), measured rows get the mean of their unrounded scores;
* every setting of a measured run that differs from the paper's evaluation gets a footnote
  (:mod:`p2r_eval.report.measured`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import p2r_leaderboards
import yaml

from p2r_eval.benchmarks.registry import own_leaderboards
from p2r_eval.media.input_policies import PAPER_INPUT_POLICY

LEADERBOARD_DIR = Path(p2r_leaderboards.__file__).resolve().parent
TABLE_NAMES = ("main", "ablation")
"""The paper's tables (``--table both``); tasks outside the paper may name their own
(:func:`p2r_eval.benchmarks.registry.own_leaderboards`)."""
ONE_DECIMAL = Decimal("0.1")
BEST, SECOND = "best", "second"


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
        known = ", ".join((*TABLE_NAMES, *own_leaderboards().values()))
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


def task_labels() -> dict[str, str]:
    """Benchmark label by task, as the main table's columns print them."""
    return {column.task: column.label for column in load_table("main").columns}


def in_column_order(tasks: Sequence[str]) -> list[str]:
    """``tasks`` in the main table's column order (tasks outside it last, by name)."""
    order = [column.task for column in load_table("main").columns]
    return sorted(tasks, key=lambda t: (order.index(t) if t in order else len(order), t))
