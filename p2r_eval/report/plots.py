"""PNG figures for the leaderboards: measured rows against the paper's, and the perception probe.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global
backend switch), so plotting works headless and never touches the caller's matplotlib state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from p2r_eval.core.untrusted import plot_label

PAPER_COLORS = ("#9e9e9e", "#5b7fa6", "#7a5ba6", "#5ba68a")
MEASURED_COLORS = ("#e07b39", "#d1495b", "#edae49", "#66a182", "#00798c")


@dataclass(frozen=True)
class BarSeries:
    """One row of a leaderboard as bars: a value (percent) per benchmark, ``None`` if missing.

    ``measured`` rows are drawn hatched in warm colours, the paper's in plain cool ones;
    ``intervals`` holds a (low, high) percent interval per benchmark, drawn as whiskers.
    """

    label: str
    values: Sequence[float | None]
    measured: bool = False
    intervals: Sequence[tuple[float, float] | None] | None = None


def plot_benchmark_bars(
    benchmarks: Sequence[str], series: Sequence[BarSeries], out_path: Path, *, title: str
) -> Path:
    """Grouped bars, one group per benchmark; measured rows hatched, with CI whiskers."""
    if not series:
        raise ValueError("plot_benchmark_bars needs at least one series")
    for one in series:
        if len(one.values) != len(benchmarks):
            raise ValueError(
                f"series {one.label!r} has {len(one.values)} values, {len(benchmarks)} benchmarks"
            )
    width_inches = min(18.0, 2 + len(benchmarks) * (0.6 + 0.35 * len(series)))
    figure = Figure(figsize=(width_inches, 4.8))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(benchmarks), dtype=float)
    width = 0.8 / len(series)
    paper_index = measured_index = 0
    for number, one in enumerate(series):
        if one.measured:
            color = MEASURED_COLORS[measured_index % len(MEASURED_COLORS)]
            measured_index += 1
        else:
            color = PAPER_COLORS[paper_index % len(PAPER_COLORS)]
            paper_index += 1
        offsets = positions - 0.4 + width * (number + 0.5)
        _draw_series(axes, offsets, width, one, color)
    axes.set_xticks(positions, list(benchmarks))
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(0, _upper_limit(series))
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    return _save(figure, out_path)


def plot_probe(
    scores: Mapping[str, tuple[float, float]],
    out_path: Path,
    *,
    title: str = "Perception probe: raw video vs text-only observation",
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Accuracy (percent) per benchmark answering from the raw video vs from the model's own
    text-only observation; ``scores`` maps task -> (raw video, text-only). An ``Avg`` group
    (unweighted mean over the benchmarks) is added when there are two or more."""
    if not scores:
        raise ValueError("plot_probe needs at least one benchmark")
    names = [labels.get(task, task) if labels else task for task in scores]
    raw = [pair[0] for pair in scores.values()]
    text_only = [pair[1] for pair in scores.values()]
    if len(scores) > 1:
        names.append("Avg")
        raw.append(float(np.mean(raw)))
        text_only.append(float(np.mean(text_only)))
    series = [
        BarSeries("raw video input", raw),
        BarSeries("text-only (model's observation)", text_only, measured=True),
    ]
    return plot_benchmark_bars(names, series, out_path, title=title)


def plot_scores_by_step(
    scores: Mapping[str, Sequence[tuple[int, float | None]]],
    references: Mapping[str, Mapping[str, float | None]],
    out_path: Path,
    *,
    title: str = "Benchmark scores by training step",
) -> Path:
    """One small panel per measured benchmark: the score (percent) against the training step,
    with each reference row (e.g. the paper's base model and VideoP2R) as a dashed line.
    ``scores`` maps benchmark -> [(step, score or None)]; ``references`` maps row name ->
    {benchmark: value or None}."""
    measured_benchmarks = {b: p for b, p in scores.items() if any(v is not None for _, v in p)}
    if not measured_benchmarks:
        raise ValueError("plot_scores_by_step needs at least one measured score")
    columns = min(4, len(measured_benchmarks))
    rows = -(-len(measured_benchmarks) // columns)
    figure = Figure(figsize=(3.4 * columns, 2.8 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    legend: dict[str, Any] = {}
    for number, (benchmark, points) in enumerate(measured_benchmarks.items()):
        axes = figure.add_subplot(rows, columns, number + 1)
        steps, values = zip(*[(s, v) for s, v in points if v is not None], strict=True)
        axes.plot(steps, values, marker="o", color=MEASURED_COLORS[0], label="measured")
        for index, (name, row) in enumerate(references.items()):
            reference = row.get(benchmark)
            if reference is not None:
                axes.axhline(reference, linestyle="--", linewidth=1,
                             color=PAPER_COLORS[(index + 1) % len(PAPER_COLORS)],
                             label=f"{name} (paper)")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(benchmark, fontsize="medium")
        axes.set_xlabel("step", fontsize="small")
        axes.set_ylabel("%", fontsize="small")
        axes.grid(alpha=0.3)
        legend.update(zip(*reversed(axes.get_legend_handles_labels()), strict=True))
    figure.legend(list(legend.values()), list(legend), loc="outside lower center",
                  ncols=len(legend), frameon=False)
    figure.suptitle(title)
    return _save(figure, out_path)


def _draw_series(axes, offsets: np.ndarray, width: float, one: BarSeries, color: str) -> None:
    bars = [(i, float(value)) for i, value in enumerate(one.values) if value is not None]
    present, heights = [i for i, _ in bars], [height for _, height in bars]
    axes.bar(
        offsets[present],
        heights,
        width,
        label=plot_label(one.label),
        color=color,
        hatch="//" if one.measured else None,
        edgecolor="white" if one.measured else None,
    )
    if one.intervals:
        _draw_intervals(axes, offsets, one.values, one.intervals)
    for i, value in enumerate(one.values):
        top = _label_height(value, one.intervals[i] if one.intervals else None)
        text = "n/a" if value is None else f"{value:.1f}"
        axes.text(offsets[i], top + 0.8, text, ha="center", va="bottom", fontsize=6, rotation=90)


def _label_height(value: float | None, interval: tuple[float, float] | None) -> float:
    """Where a bar's value label starts: above the bar, or above its CI whisker."""
    if value is None:
        return 0.0
    return max(value, interval[1]) if interval else value


def _draw_intervals(
    axes,
    offsets: np.ndarray,
    values: Sequence[float | None],
    intervals: Sequence[tuple[float, float] | None],
) -> None:
    for i, (value, interval) in enumerate(zip(values, intervals, strict=True)):
        if value is None or interval is None:
            continue
        below, above = max(0.0, value - interval[0]), max(0.0, interval[1] - value)
        axes.errorbar(offsets[i], value, yerr=[[below], [above]], color="black", capsize=2, lw=0.8)


def _upper_limit(series: Sequence[BarSeries]) -> float:
    tops = [v for one in series for v in one.values if v is not None]
    tops += [iv[1] for one in series for iv in (one.intervals or []) if iv is not None]
    return min(110.0, max(tops, default=0.0) * 1.15 + 5)


def _save(figure: Figure, out_path: Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=150, bbox_inches="tight")
    return out_path
