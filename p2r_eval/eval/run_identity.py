"""Run identity: every input that determines a run's outputs.

A run's identity is its model fingerprint, every recorded setting that changes what it
computes (protocol, prompt style and hash, frame and input policy, decoding, seed, limit, and
any setting added later: identity is read from the recorded settings, so a new setting counts
unless it is listed in :data:`OUTCOME_NEUTRAL_SETTINGS`), and per task the data it read: the
annotation files' hashes and one hash over its items' content. Each sample also carries its
item's content hash, so two runs' samples pair only where they answer the same question.

Resume, merge, ``compare`` and the leaderboards read identities from results.json and refuse or
flag a mismatch, naming what differs (:func:`identity_differences`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from p2r_eval.benchmarks.registry import LoadedTask
from p2r_eval.eval.results import RunResults, RunSettings, TaskEntry

OUTCOME_NEUTRAL_SETTINGS = frozenset({
    "batch_size", "shard", "merged_shards", "decode_timeout_s", "data_root", "data_files",
})
"""Recorded settings that do not change a run's outputs. ``data_root`` is where the data lies,
not what it is; the tasks' data identities say what it is."""
RESUMABLE_SETTINGS = ("limit",)
"""Settings a resumed run may change: the items already done are kept (each has its content
hash), the others are generated."""


def task_data_identity(loaded: LoadedTask) -> dict[str, Any]:
    """What a task's data is: its annotation files' hashes and a hash over its items."""
    digest = hashlib.sha256()
    for item_id, item_hash in loaded.item_hashes.items():
        digest.update(f"{item_id}\0{item_hash}\n".encode("utf-8", "surrogatepass"))
    return {"files": dict(sorted(loaded.data_files.items())), "items_sha256": digest.hexdigest()}


@dataclass(frozen=True)
class RunIdentity:
    """A run's identity; ``model`` None where it is not known yet (before the model loads)."""

    model: Any
    settings: dict[str, Any]
    task_data: dict[str, Any]


def outcome_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in OUTCOME_NEUTRAL_SETTINGS}


def recorded_identity(results: RunResults) -> RunIdentity:
    """The identity a results.json records (task data None where an older p2r did not)."""
    return RunIdentity(
        model=results.model.fingerprint,
        settings=outcome_settings(results.settings.as_json()),
        task_data={name: entry.data for name, entry in results.tasks.items()},
    )


def identity_differences(
    a: RunIdentity, b: RunIdentity, *, ignore: Collection[str] = (),
    tasks: Iterable[str] | None = None,
) -> list[str]:
    """What differs between two identities, one phrase each (``model``, ``decoding (… vs …)``,
    ``data of mvbench (…)``). ``tasks``: whose data to compare (default: the tasks both have);
    a model of None is not compared."""
    differences = []
    if a.model is not None and b.model is not None and a.model != b.model:
        differences.append("model")
    for key in sorted(set(a.settings) | set(b.settings)):
        if key not in ignore and a.settings.get(key) != b.settings.get(key):
            differences.append(f"{key} ({_short(a.settings.get(key))} vs "
                               f"{_short(b.settings.get(key))})")
    shared = tasks if tasks is not None else [t for t in a.task_data if t in b.task_data]
    for task in shared:
        difference = data_difference(a.task_data.get(task), b.task_data.get(task))
        if difference:
            differences.append(f"data of {task} ({difference})")
    return differences


def data_difference(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str | None:
    """How two task data identities differ, in words; None when they are the same."""
    if a is None or b is None:
        return "not recorded by the p2r version that made the run"
    if a == b:
        return None
    files_a, files_b = a.get("files") or {}, b.get("files") or {}
    changed = sorted(name for name in set(files_a) | set(files_b)
                     if files_a.get(name) != files_b.get(name))
    if changed:
        return "annotation files differ: " + ", ".join(
            f"{name} {_digest(files_a.get(name))} vs {_digest(files_b.get(name))}"
            for name in changed[:3])
    return "the items differ"


def _digest(value: str | None) -> str:
    return "absent" if value is None else value[:12]


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def uses_demo_suite(settings: RunSettings) -> bool:
    """True for a run on the built-in demo suite (no ``--data-root``): a few synthetic items
    per benchmark, whose scores are not comparable with the paper's."""
    return settings.data_root is None


def partially_scored(entry: TaskEntry) -> bool:
    """A results.json task entry whose score covers only part of the task's items: not every
    item finished, or items without a score that are not failures (judge-graded items awaiting
    a judge). Such a score is never shown as if it were the benchmark's."""
    return entry.score is not None and (
        entry.complete is False or entry.n_scored + entry.n_errors < entry.n)
