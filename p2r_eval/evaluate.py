"""The evaluation loop: items → requests → outputs → parsed, scored samples → task scores.

Each phase is a small function; :func:`run_evaluation` only wires them together. Every
finished item is appended to the run store before the next batch starts, so an interrupted
run resumes where it stopped and never generates an item twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from p2r_eval import provenance
from p2r_eval.items import Item
from p2r_eval.models.base import Backend, DecodingSettings, Request
from p2r_eval.prompts import build_prompt, prompt_hash, style_hash
from p2r_eval.protocols import ItemScore, aggregate_task, score_item
from p2r_eval.runstore import RunStore, RunStoreError
from p2r_eval.tasks import LoadedTask, load_task
from p2r_eval.template import PROCESS_AWARE_TAGS, THINK_ANSWER_TAGS, parse
from p2r_eval.video import FramePolicy, VideoError, load_frame_folder, sample_frames

log = logging.getLogger(__name__)

RESULTS_SCHEMA = 1
REQUIRED_TAGS_BY_STYLE = {"p2r": PROCESS_AWARE_TAGS, "r1": THINK_ANSWER_TAGS, "direct": ("answer",)}


@dataclass(frozen=True)
class EvalSettings:
    """Everything that decides what a run computes; recorded in results.json."""

    model_spec: str
    tasks: tuple[str, ...]
    protocol: str = "video-r1"
    prompt_style: str = "p2r"
    frame_policy: FramePolicy = field(default_factory=FramePolicy)
    decoding: DecodingSettings = field(default_factory=DecodingSettings)
    data_root: Path | None = None
    limit: int | None = None
    batch_size: int = 1
    retry_errors: bool = False


@dataclass
class TaskOutcome:
    """What one task's pass produced: its score entry for results.json."""

    name: str
    entry: dict[str, Any]


class MediaError(RuntimeError):
    """An item's media could not be used (the message names the item and the file)."""


def load_request(item: Item, style: str, policy: FramePolicy, needs_media: bool) -> Request:
    """Build the generation request of one item, decoding its media when the backend needs it."""
    prompt = build_prompt(item, style)
    if not needs_media or item.media_type == "none":
        return Request(task=item.task, item_id=item.id, prompt=prompt)
    media_error = item.meta.get("media_error")
    if media_error:
        raise MediaError(f"{item.task}/{item.id}: {media_error}")
    if item.media is None:
        raise MediaError(f"{item.task}/{item.id}: the record names no media file")
    try:
        if item.media_type == "image":
            return Request(item.task, item.id, prompt, image=_load_image(item.media))
        sampled = (
            load_frame_folder(item.media, policy)
            if item.media_type == "frames"
            else sample_frames(item.media, policy=policy)
        )
    except (VideoError, OSError) as error:
        raise MediaError(f"{item.task}/{item.id}: {error}") from error
    return Request(item.task, item.id, prompt, frames=sampled.frames, fps=sampled.sample_fps)


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def sample_record(item: Item, style: str, output: str, scored: ItemScore) -> dict[str, Any]:
    """The samples/<task>.jsonl line of a generated item."""
    segments = parse(output)
    return {
        "id": item.id,
        "answer_type": item.answer_type,
        "prompt_hash": prompt_hash(build_prompt(item, style)),
        "output": output,
        "segments": {
            "observation": segments.observation,
            "think": segments.think,
            "answer": segments.answer,
            "deviations": segments.deviations(REQUIRED_TAGS_BY_STYLE[style]),
        },
        "extracted": scored.extracted,
        "score": scored.score,
        "rule": scored.rule,
        "note": scored.note,
        "error": None,
        "meta": _jsonable_meta(item.meta),
    }


def error_record(item: Item, message: str) -> dict[str, Any]:
    """The samples line of an item that could not be generated (the run goes on)."""
    return {
        "id": item.id,
        "answer_type": item.answer_type,
        "output": None,
        "score": None,
        "error": message,
        "meta": _jsonable_meta(item.meta),
    }


def _jsonable_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, type(None)))}


def generate_batch(
    backend: Backend, items: Sequence[Item], settings: EvalSettings
) -> Iterable[tuple[Item, str | None, str | None]]:
    """Yield ``(item, output, error)`` for a batch. Media errors fail only their item; a
    backend failure on the batch is retried item by item to isolate the bad one."""
    ready: list[tuple[Item, Request]] = []
    for item in items:
        try:
            ready.append(
                (item, load_request(item, settings.prompt_style, settings.frame_policy,
                                    backend.needs_media))
            )
        except MediaError as error:
            yield item, None, str(error)
    if not ready:
        return
    try:
        outputs = backend.generate([request for _, request in ready])
    except Exception as error:  # noqa: BLE001 - any backend failure becomes per-item errors
        if len(ready) == 1:
            yield ready[0][0], None, f"{ready[0][0].task}/{ready[0][0].id}: {error}"
            return
        for item, request in ready:
            try:
                yield item, backend.generate([request])[0], None
            except Exception as single_error:  # noqa: BLE001
                yield item, None, f"{item.task}/{item.id}: {single_error}"
        return
    for (item, _), output in zip(ready, outputs):
        yield item, output, None


def pending_items(
    items: Sequence[Item], finished: dict[str, dict[str, Any]], retry_errors: bool
) -> list[Item]:
    """Items with no sample yet (and, with ``retry_errors``, those whose sample is an error)."""
    return [
        item
        for item in items
        if item.id not in finished or (retry_errors and finished[item.id].get("error"))
    ]


def evaluate_task(
    loaded: LoadedTask,
    backend: Backend,
    store: RunStore,
    settings: EvalSettings,
    judge: Any = None,
    show_progress: bool = True,
) -> TaskOutcome:
    """Generate and score every pending item of one task, then aggregate all its samples."""
    started = time.monotonic()
    items = loaded.items[: settings.limit] if settings.limit else loaded.items
    finished = store.load_samples(loaded.name)
    todo = pending_items(items, finished, settings.retry_errors)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=loaded.name, unit="item",
               disable=not show_progress, dynamic_ncols=True)
    for start in range(0, len(todo), settings.batch_size):
        batch = todo[start : start + settings.batch_size]
        for item, output, error in generate_batch(backend, batch, settings):
            if error is not None:
                record = error_record(item, error)
                log.warning("%s", error)
            else:
                scored = score_item(item, output, settings.protocol, judge=judge)
                record = sample_record(item, settings.prompt_style, output, scored)
            store.append_sample(loaded.name, record)
            finished[item.id] = record
            bar.update(1)
    bar.close()
    entry = task_entry(loaded, items, finished, settings.protocol)
    entry["wall_time_s"] = round(time.monotonic() - started, 3)
    return TaskOutcome(loaded.name, entry)


def task_entry(
    loaded: LoadedTask, items: Sequence[Item], finished: dict[str, dict[str, Any]], protocol: str
) -> dict[str, Any]:
    """The results.json entry of a task from its samples."""
    scores = [finished[item.id].get("score") if item.id in finished else None for item in items]
    aggregate = aggregate_task(loaded.name, items, scores, protocol)
    n_errors = sum(1 for item in items if finished.get(item.id, {}).get("error"))
    return {
        "score": aggregate.score,
        "n": aggregate.n,
        "n_scored": aggregate.n_scored,
        "n_errors": n_errors,
        "complete": all(item.id in finished for item in items),
        "breakdown": aggregate.breakdown,
        "source_format": loaded.source_format,
    }


def settings_record(settings: EvalSettings, data_files: dict[str, str]) -> dict[str, Any]:
    return {
        "protocol": settings.protocol,
        "prompt_style": settings.prompt_style,
        "prompt_hash": style_hash(settings.prompt_style),
        "frame_policy": settings.frame_policy.as_dict(),
        "decoding": settings.decoding.as_dict(),
        "seed": settings.decoding.seed,
        "limit": settings.limit,
        "batch_size": settings.batch_size,
        "data_root": str(settings.data_root) if settings.data_root else None,
        "data_files": data_files,
    }


IDENTITY_KEYS = ("protocol", "prompt_style", "prompt_hash", "frame_policy", "decoding", "seed")


def check_resumable(previous: dict[str, Any] | None, model: dict, settings: dict, root: Path) -> None:
    """Refuse to mix two different runs in one folder: the model and every setting that
    changes outputs must match the run already there (``limit`` and ``batch_size`` may change)."""
    if previous is None:
        return
    differences = [
        key for key in IDENTITY_KEYS if previous.get("settings", {}).get(key) != settings.get(key)
    ]
    if previous.get("model", {}).get("fingerprint") != model["fingerprint"]:
        differences.insert(0, "model")
    if differences:
        raise RunStoreError(
            f"{root} holds a run with different {', '.join(differences)}; "
            "resume it with the same settings or choose another --output"
        )


def finished_run(previous: dict[str, Any] | None, settings: EvalSettings) -> bool:
    """True when ``previous`` is this very run, already complete: nothing to load or generate."""
    if not previous or not previous.get("finished_at"):
        return False
    if previous.get("model", {}).get("spec") != settings.model_spec:
        return False
    recorded, wanted = previous.get("settings", {}), settings_record(settings, {})
    if any(recorded.get(key) != wanted[key] for key in (*IDENTITY_KEYS, "limit")):
        return False
    tasks = previous.get("tasks", {})
    return all(tasks.get(name, {}).get("complete") for name in settings.tasks)


def run_evaluation(
    settings: EvalSettings,
    backend: Backend,
    output: Path,
    *,
    judge: Any = None,
    show_progress: bool = True,
    on_task_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``settings.tasks`` into ``output`` and return the results dictionary.

    Resumes a previous run in ``output`` (same model and settings), skipping finished items.
    results.json is rewritten after every task, so a crash loses at most the item in flight.
    """
    store = RunStore(output)
    with store.exclusive():
        loaded_tasks = [load_task(name, settings.data_root) for name in settings.tasks]
        data_files = {path: digest for task in loaded_tasks for path, digest in task.data_files.items()}
        model = {"spec": settings.model_spec, "name": model_display_name(settings.model_spec),
                 "fingerprint": backend.fingerprint()}
        settings_json = settings_record(settings, data_files)
        previous = store.read_results()
        check_resumable(previous, model, settings_json, output)
        results = {
            "schema": RESULTS_SCHEMA,
            "model": model,
            "settings": settings_json,
            "package": provenance.package_info(),
            "tasks": dict(previous.get("tasks", {})) if previous else {},
            "started_at": (previous or {}).get("started_at") or _now(),
            "finished_at": None,
        }
        for loaded in loaded_tasks:
            outcome = evaluate_task(loaded, backend, store, settings, judge, show_progress)
            results["tasks"][outcome.name] = outcome.entry
            store.write_results(results)
            if on_task_done:
                on_task_done(results)
        results["finished_at"] = _now()
        store.write_results(results)
    return results


def model_display_name(spec: str) -> str:
    """A short name for tables: the folder name of a path, the spec otherwise."""
    if spec.startswith("replay:"):
        return "replay:" + Path(spec[len("replay:"):]).stem
    return Path(spec).name or spec


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
