"""The static site of ``p2r-eval view``: HTML pages rendered with Jinja2 (autoescaped: every
piece of model, annotation and judge text is escaped) and a small script that filters the
sample lists in the browser. The site needs no server; open ``index.html`` from disk.

Layout::

    SITE/index.html                              the runs, training runs and comparisons
    SITE/assets/                                 style sheet and the list script
    SITE/frames/<key>/<n>.jpg                    thumbnails, shared by every page (frames.py)
    SITE/runs/<run>/index.html                   run page
    SITE/runs/<run>/<task>/index.html, rows.js   sample list and its data
    SITE/runs/<run>/<task>/<n>.html              sample page (n: position in the task)
    SITE/compare/<run a>--<run b>/<task>.html    two runs on the same items
    SITE/training/<run>/index.html               a training run's checkpoints
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from p2r_eval.core.untrusted import visible_controls
from p2r_eval.report.tables import LeaderboardError, load_table
from p2r_eval.report.view.frames import FrameStrip, ThumbnailMaker
from p2r_eval.report.view.pairs import RunComparison, compare_run_views
from p2r_eval.report.view.runs import RunView, TaskView, read_run_view
from p2r_eval.report.view.samples import (
    FAILURE_KIND_MEANINGS,
    FAILURE_KINDS,
    STATUSES,
    SampleView,
)
from p2r_eval.report.view.training import TrainingView, read_training_view

PLOT_FILES = {"leaderboards/main_bars.png": "main_bars.png"}
SEARCH_TEXT_LIMIT = 4000
"""Characters of each output kept for the list's search (the sample page shows all)."""


@dataclass
class SiteReport:
    """What a build wrote: ``index`` (the entry page), counts, and problems worth telling."""

    index: Path
    runs: int = 0
    samples: int = 0
    notes: list[str] = field(default_factory=list)


def slug(name: str, identity: str) -> str:
    """A folder name safe on every file system, unique by ``identity``."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "run"
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


def task_folder(task: str) -> str:
    return task if re.fullmatch(r"[a-z0-9_-]+", task) else slug(task, task)


def jinja_environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("p2r_eval.report.view", "templates"),
        autoescape=select_autoescape(["html", "svg"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["percent"] = format_percent
    environment.filters["number"] = format_number
    environment.filters["visible"] = visible_text
    environment.globals.update(STATUSES=STATUSES, FAILURE_KINDS=FAILURE_KINDS,
                               FAILURE_KIND_MEANINGS=FAILURE_KIND_MEANINGS)
    return environment


def visible_text(text: Any) -> str:
    """Untrusted text with its line breaks kept and every other character that is not
    printable (controls, bidirectional overrides, zero-width characters) shown as
    ``\\uXXXX``, so that nothing hides or reorders what the page shows."""
    if text is None:
        return ""
    return "\n".join(visible_controls(line) for line in str(text).split("\n"))


def format_percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def format_number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class SiteWriter:
    """Renders pages into ``root``; each page gets ``root`` (the relative way back to the site
    root) so that links work from disk."""

    def __init__(self, root: Path, thumbnails: ThumbnailMaker | None) -> None:
        self.root = Path(root)
        self.thumbnails = thumbnails
        self.environment = jinja_environment()

    def render(self, template: str, relative: str, **context: Any) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        back = os.path.relpath(self.root, path.parent).replace(os.sep, "/")
        page = self.environment.get_template(template).render(
            root="" if back == "." else back + "/", **context)
        path.write_text(page, encoding="utf-8")
        return path

    def copy_assets(self) -> None:
        target = self.root / "assets"
        target.mkdir(parents=True, exist_ok=True)
        for asset in resources.files("p2r_eval.report.view").joinpath("static").iterdir():
            if asset.is_file():
                (target / asset.name).write_bytes(asset.read_bytes())

    def frame_strip(self, run: RunView, sample: SampleView) -> FrameStrip:
        if self.thumbnails is None:
            return FrameStrip(problem="frames not drawn (--no-frames)")
        if run.frame_policy is None:
            return FrameStrip(problem=run.frame_policy_problem)
        if sample.item is None:
            return FrameStrip(problem="the item is not in the annotations found")
        return self.thumbnails.strip(sample.item, run.frame_policy)


def run_folder_name(run: RunView) -> str:
    return slug(run.root.name, str(run.root.resolve()))


def task_labels() -> dict[str, str]:
    try:
        return {column.task: column.label for column in load_table("main").columns}
    except LeaderboardError:
        return {}


def list_row(sample: SampleView) -> dict[str, Any]:
    """One sample as the list script sees it (plain data; the script writes text, never
    HTML)."""
    item = sample.item
    return {
        "n": sample.position,
        "id": sample.id,
        "status": sample.status,
        "kinds": list(sample.failure_kinds),
        "cats": list(sample.categories),
        "question": item.question if item is not None else "",
        "output": (sample.output or sample.record.error or "")[:SEARCH_TEXT_LIMIT],
        "words": sample.output_words,
        "score": sample.record.score,
    }


def rows_script(samples: Sequence[SampleView]) -> str:
    """The list's data as a script (a file, so the site works from disk without fetch())."""
    rows = json.dumps([list_row(sample) for sample in samples], ensure_ascii=True)
    return f"window.P2R_ROWS = {rows};\n"


def write_task(writer: SiteWriter, run: RunView, task: TaskView, run_dir: str,
               labels: dict[str, str]) -> None:
    folder = f"{run_dir}/{task_folder(task.name)}"
    (writer.root / folder).mkdir(parents=True, exist_ok=True)
    (writer.root / folder / "rows.js").write_text(rows_script(task.samples), encoding="utf-8")
    writer.render("samples.html", f"{folder}/index.html", run=run, task=task,
                  label=labels.get(task.name, task.name))
    for index, sample in enumerate(task.samples):
        writer.render(
            "sample.html", f"{folder}/{sample.position}.html", run=run, task=task,
            sample=sample, strip=writer.frame_strip(run, sample),
            previous=task.samples[index - 1] if index else None,
            next=task.samples[index + 1] if index + 1 < len(task.samples) else None,
            card_command=card_command(run, sample))


def card_command(run: RunView, sample: SampleView) -> str:
    return f"p2r-eval view {run.root} --card {sample.task}/{sample.id}"


def copy_plots(run: RunView, target: Path) -> list[str]:
    """Copy the run's plots next to its page; returns their file names."""
    names = []
    for source, name in PLOT_FILES.items():
        if (run.root / source).exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run.root / source, target / name)
            names.append(name)
    return names


def write_run(writer: SiteWriter, run: RunView, labels: dict[str, str]) -> str:
    """All pages of one run; returns its page's path relative to the site root."""
    run_dir = f"runs/{run_folder_name(run)}"
    plots = copy_plots(run, writer.root / run_dir)
    for task in run.tasks:
        write_task(writer, run, task, run_dir, labels)
    writer.render("run.html", f"{run_dir}/index.html", run=run, labels=labels, plots=plots,
                  task_folder=task_folder, table=load_table("main"))
    return f"{run_dir}/index.html"


def write_comparison(writer: SiteWriter, comparison: RunComparison) -> list[tuple[str, str]]:
    """Pages of two runs side by side; returns (task, page) pairs."""
    folder = f"compare/{run_folder_name(comparison.run_a)}--{run_folder_name(comparison.run_b)}"
    pages = []
    for task in comparison.tasks:
        page = f"{folder}/{task_folder(task.name)}.html"
        writer.render("compare.html", page, comparison=comparison, task=task,
                      page_a=f"runs/{run_folder_name(comparison.run_a)}/{task_folder(task.name)}",
                      page_b=f"runs/{run_folder_name(comparison.run_b)}/{task_folder(task.name)}")
        pages.append((task.name, page))
    return pages


def write_training(writer: SiteWriter, training: TrainingView, labels: dict[str, str]) -> str:
    folder = f"training/{slug(training.root.name, str(training.root.resolve()))}"
    plots = []
    for name, source in training.plots.items():
        (writer.root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, writer.root / folder / name)
        plots.append(name)
    checkpoint_pages = {step: write_run(writer, run, labels) for step, run in training.checkpoints}
    writer.render("training.html", f"{folder}/index.html", training=training, plots=plots,
                  pages=checkpoint_pages, labels=labels, table=load_table("main"))
    return f"{folder}/index.html"


def build_site(
    folders: Sequence[Path],
    output: Path,
    *,
    frame_cache: Path | None = None,
    with_frames: bool = True,
) -> SiteReport:
    """Write the site of the run folders and training run folders ``folders`` into
    ``output``; with two or more evaluation runs, each is also compared with the first."""
    output = Path(output)
    writer = SiteWriter(output, ThumbnailMaker(output, frame_cache) if with_frames else None)
    writer.copy_assets()
    labels = task_labels()
    runs: list[tuple[RunView, str]] = []
    trainings: list[tuple[TrainingView, str]] = []
    report = SiteReport(output / "index.html")
    for folder in folders:
        training = read_training_view(Path(folder))
        if training is not None:
            trainings.append((training, write_training(writer, training, labels)))
            report.runs += len(training.checkpoints)
            report.samples += sum(len(t.samples) for _, run in training.checkpoints
                                  for t in run.tasks)
            continue
        run = read_run_view(Path(folder))
        runs.append((run, write_run(writer, run, labels)))
        report.runs += 1
        report.samples += sum(len(task.samples) for task in run.tasks)
        report.notes += [f"{run.root}: {task.name}: {task.annotations_problem}"
                         for task in run.tasks if task.annotations_problem]
    comparisons = []
    for run, _ in runs[1:]:
        comparison = compare_run_views(runs[0][0], run)
        comparisons.append((comparison, write_comparison(writer, comparison)))
        report.notes += comparison.notes
    writer.render("index.html", "index.html", runs=runs, trainings=trainings,
                  comparisons=comparisons, labels=labels)
    return report


def write_card(writer: SiteWriter, run: RunView, task_name: str, sample_id: str) -> Path:
    """The case card of one sample as ``SITE/cards/<task>-<id>.svg``."""
    from p2r_eval.report.view.card import card_layout

    task = next((t for t in run.tasks if t.name == task_name), None)
    if task is None:
        raise ValueError(f"--card {task_name}/{sample_id}: the run has no task {task_name!r} "
                         f"(it has {', '.join(t.name for t in run.tasks)})")
    sample = next((s for s in task.samples if s.id == sample_id), None)
    if sample is None:
        raise ValueError(f"--card {task_name}/{sample_id}: {task_name} has no sample "
                         f"{sample_id!r}")
    card = card_layout(sample, writer.frame_strip(run, sample), writer.root)
    name = slug(f"{task_name}-{sample_id}", f"{run.root.resolve()}\0{task_name}\0{sample_id}")
    return writer.render("card.svg", f"cards/{name}.svg", card=card)
