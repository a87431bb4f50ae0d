"""The perception-only text probe (VideoP2R's "effect of perception" analysis).

Three resumable runs in one folder, each a normal run store:

1. ``perceiver/``: the perceiver model with the process-aware prompt (with video);
2. ``raw_video/``: the reasoner with its own prompt and the video;
3. ``text_only/``: the reasoner with the perceiver's ``<observation>`` as text and no video.

Both reasoner runs are scored by the task's protocol; ``probe.json`` and ``probe.md`` give,
per benchmark, raw-video accuracy against text-only-observation accuracy, and ``probe.png``
plots them. Items whose perceiver output has no observation are still asked (with an empty
description) and counted, so the text-only score is never flattered by dropping them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tabulate import tabulate

from p2r_eval.benchmarks.registry import LoadedTask, load_task
from p2r_eval.core.items import Item
from p2r_eval.core.prompts import TEXT_ONLY_STYLE, probe_spec
from p2r_eval.eval.loop import EvalSettings, limited, run_evaluation
from p2r_eval.eval.results import RunResults, Sample
from p2r_eval.eval.runstore import RunStore
from p2r_eval.models.base import Backend

BackendLoader = Callable[[str], Backend]


def observation_items(loaded: LoadedTask, perceiver_samples: dict[str, Sample],
                      reasoner_style: str) -> LoadedTask:
    """The task's items as text-only items carrying the perceiver's observation."""
    def text_only(item: Item) -> Item:
        sample = perceiver_samples.get(item.id)
        segments = sample.segments if sample is not None else None
        observation = (segments.observation if segments is not None else None) or ""
        meta = {**item.meta, "observation": observation, "reasoner_style": reasoner_style}
        return dataclasses.replace(item, media=None, media_type="none", meta=meta)

    return dataclasses.replace(loaded, items=[text_only(item) for item in loaded.items])


def missing_observations(items: list[Item]) -> int:
    return sum(1 for item in items if not item.meta.get("observation", "").strip())


def run_probe(base: EvalSettings, perceiver: str, reasoner: str, output: Path,
              load_backend: BackendLoader, show_progress: bool = True) -> dict[str, Any]:
    """Run the three phases into ``output`` and return the per-benchmark comparison."""
    spec = probe_spec()
    reasoner_style = spec["reasoner_prompt_style"]
    loaded = [dataclasses.replace(task, items=limited(task.items, base.limit))
              for task in (load_task(name, base.data_root) for name in base.tasks)]
    perceiver_settings = dataclasses.replace(base, model_spec=perceiver,
                                             prompt_style=spec["perceiver_prompt_style"])
    run_evaluation(perceiver_settings, load_backend(perceiver), output / "perceiver",
                   show_progress=show_progress, loaded_tasks=loaded)
    reasoner_backend = load_backend(reasoner)
    raw_settings = dataclasses.replace(base, model_spec=reasoner, prompt_style=reasoner_style)
    raw = run_evaluation(raw_settings, reasoner_backend, output / "raw_video",
                         show_progress=show_progress, loaded_tasks=loaded)
    perceiver_store = RunStore(output / "perceiver")
    text_tasks = [observation_items(task, perceiver_store.load_samples(task.name), reasoner_style)
                  for task in loaded]
    text_settings = dataclasses.replace(base, model_spec=reasoner, prompt_style=TEXT_ONLY_STYLE)
    text_only = run_evaluation(text_settings, reasoner_backend, output / "text_only",
                               show_progress=show_progress, loaded_tasks=text_tasks)
    comparison = compare_runs(raw, text_only, text_tasks)
    summary = {"perceiver": perceiver, "reasoner": reasoner, "probe_version": spec["version"],
               "tasks": comparison}
    (output / "probe.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (output / "probe.md").write_text(render_probe_table(comparison) + "\n", encoding="utf-8")
    _plot(comparison, output / "probe.png")
    return summary


def compare_runs(raw: RunResults, text_only: RunResults,
                 text_tasks: list[LoadedTask]) -> dict[str, dict[str, Any]]:
    return {
        task.name: {
            "raw_video": raw.tasks[task.name].score,
            "text_only": text_only.tasks[task.name].score,
            "n": text_only.tasks[task.name].n,
            "missing_observations": missing_observations(task.items),
        }
        for task in text_tasks
    }


def render_probe_table(comparison: dict[str, dict[str, Any]]) -> str:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [[name, cell(entry["raw_video"]), cell(entry["text_only"]), entry["n"],
             entry["missing_observations"]] for name, entry in comparison.items()]
    headers = ["benchmark", "raw video %", "text-only observation %", "items",
               "no observation"]
    return tabulate(rows, headers=headers, tablefmt="github")


def _plot(comparison: dict[str, dict[str, Any]], path: Path) -> None:
    from p2r_eval.report.plots import plot_probe
    from p2r_eval.report.tables import load_table

    values = {name: (entry["raw_video"], entry["text_only"]) for name, entry in comparison.items()}
    labels = {column.task: column.label for column in load_table("main").columns}
    plot_probe(values, path, labels=labels)
