"""A run's leaderboards: the paper's tables with runs as measured rows, written as markdown
(:mod:`p2r_eval.report.markdown`) and bar plots (:mod:`p2r_eval.report.plots`).

The tables as data and their rules are in :mod:`p2r_eval.report.tables`, rows from runs in
:mod:`p2r_eval.report.measured`, the paired test of two runs in :mod:`p2r_eval.report.compare`;
the ``leaderboard`` and ``compare`` subcommands in :mod:`p2r_eval.cli.leaderboard`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from p2r_eval.core.stats import DEFAULT_CI_RESAMPLES, ConfidenceInterval
from p2r_eval.report.markdown import render_markdown
from p2r_eval.report.measured import MeasuredRow, measured_rows
from p2r_eval.report.plots import BarSeries, plot_benchmark_bars
from p2r_eval.report.tables import Table, load_table


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
