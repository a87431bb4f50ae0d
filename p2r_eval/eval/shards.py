"""Data-parallel evaluation: split one run's items across processes, GPUs or machines.

Shard ``i`` of ``n`` evaluates videos ``i, i+n, i+2n, …`` of every task (after ``--limit``),
each with all its questions, so no video is decoded by two shards (an item without a video
counts as one), into ``OUTPUT/shards/<i>-of-<n>/``, a complete run folder of its own (own
lock, own resume). When the last shard finishes, or on ``p2r-eval merge OUTPUT``, the shards'
samples are merged into ``OUTPUT/samples`` in the order one process generates them and
``OUTPUT/results.json`` is computed from them, with the same aggregation as a single-process
run, so the two are equal item for item.

Under ``accelerate launch`` (or torchrun), ``--shard auto`` takes the shard from the
``RANK``/``WORLD_SIZE`` environment variables.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from p2r_eval.benchmarks.registry import load_task
from p2r_eval.core.items import Item
from p2r_eval.eval.results import RunResults, Sample
from p2r_eval.eval.runstore import MERGE_WAIT_S, RunStore, RunStoreError
from p2r_eval.media.requests import grouped_by_video, video_groups

Shard = tuple[int, int]


def parse_shard(text: str) -> Shard | None:
    """``"i/n"`` (0 <= i < n) or ``"auto"`` (RANK/WORLD_SIZE of a distributed launch)."""
    if text == "auto":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return (int(os.environ.get("RANK", "0")), world) if world > 1 else None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/n or auto, not {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return (index, count) if count > 1 else None


def shard_items(items: Sequence[Item], shard: Shard | None) -> list[Item]:
    """The items shard ``(i, n)`` evaluates: every n-th video's questions, from the i-th
    (:func:`p2r_eval.media.requests.video_groups`); all of them without a shard."""
    if shard is None:
        return list(items)
    index, count = shard
    return [item for group in video_groups(items)[index::count] for item in group]


def shard_dir(output: Path, shard: Shard) -> Path:
    return Path(output) / "shards" / f"{shard[0]}-of-{shard[1]}"


def finished_shards(output: Path, count: int) -> list[RunResults] | None:
    """Every shard's results if all ``count`` shards have finished, else None."""
    results = [RunStore(shard_dir(output, (i, count))).read_results() for i in range(count)]
    finished = [r for r in results if r is not None and r.finished_at]
    return finished if len(finished) == count else None


def check_shards_agree(results: Sequence[RunResults]) -> None:
    """All shards must come from the same model and settings (only the shard differs)."""
    def identity(result: RunResults) -> str:
        settings = {k: v for k, v in result.settings.as_json().items() if k != "shard"}
        return json.dumps([result.model.fingerprint, settings], sort_keys=True)

    if len({identity(r) for r in results}) > 1:
        raise RunStoreError("the shards were run with different models or settings; not merging")


def merge_shards(output: Path, count: int) -> RunResults | None:
    """Merge the ``count`` shards of ``output`` once all have finished; None until then."""
    from p2r_eval.eval.loop import check_samples_match_items, limited, task_entry
    from p2r_eval.report.analysis import render_analysis_table

    shard_results = finished_shards(output, count)
    if shard_results is None:
        return None
    check_shards_agree(shard_results)
    first = shard_results[0]
    settings = first.settings
    data_root = Path(settings.data_root) if settings.data_root else None
    store = RunStore(output)
    merged = first.model_copy(update={
        "settings": settings.model_copy(update={"shard": None, "merged_shards": count}),
        "tasks": {}})
    with store.exclusive(wait_s=MERGE_WAIT_S):
        # Every task is read and checked against the data before anything is rewritten.
        merging = []
        for name in first.tasks:
            loaded = load_task(name, data_root)
            samples: dict[str, Sample] = {}
            for index in range(count):
                shard_store = RunStore(shard_dir(output, (index, count)))
                samples.update(shard_store.load_samples(name, repair=False))
            check_samples_match_items(store, name, samples, loaded.item_hashes)
            merging.append((name, loaded, samples))
        mark_unfinished(store)
        analysis_sections = []
        for name, loaded, samples in merging:
            items = limited(loaded.items, settings.limit)
            write_samples_in_order(store, name, items, samples)
            verdicts = merged_verdicts(output, count, name)
            sufficient = {item_id: verdict.get("sufficient") for item_id, verdict in
                          verdicts.items()}
            wall_time_s = max(r.tasks[name].wall_time_s for r in shard_results)
            entry, analysis = task_entry(loaded, items, samples, settings.protocol,
                                         settings.prompt_style, wall_time_s, sufficient or None)
            if verdicts:
                store.write_verdicts(name, verdicts)
            merged.tasks[name] = entry
            analysis_sections.append(f"## {name}\n\n{render_analysis_table(analysis)}\n")
        # as in a single-process run: analysis.md before results.json says finished
        (output / "analysis.md").write_text(
            "# Process analysis\n\n" + "\n".join(analysis_sections), encoding="utf-8")
        merged.finished_at = max(r.finished_at or "" for r in shard_results)
        store.write_results(merged)
    return merged


def merged_verdicts(output: Path, count: int, task: str) -> dict[str, Any]:
    """The observation-sufficiency verdicts (``--attribute-errors``) the shards recorded."""
    verdicts: dict[str, Any] = {}
    for index in range(count):
        verdicts.update(RunStore(shard_dir(output, (index, count))).read_verdicts(task))
    return verdicts


def mark_unfinished(store: RunStore) -> None:
    """Before a merge rewrites samples files: results.json no longer says finished, so a merge
    killed half-way reads as unfinished (and is redone), never as finished with samples that
    are partly another merge's."""
    previous = store.read_results()
    if previous and previous.finished_at:
        store.write_results(previous.model_copy(update={"finished_at": None}))


def write_samples_in_order(
    store: RunStore, task: str, items: Sequence[Item], samples: dict[str, Sample]
) -> None:
    """Replace ``samples/<task>.jsonl`` (atomically) with one line per item, in the order a
    single process generates ``items`` (:func:`p2r_eval.media.requests.grouped_by_video`)."""
    store.replace_samples(task, (samples[item.id] for item in grouped_by_video(items)
                                 if item.id in samples))
