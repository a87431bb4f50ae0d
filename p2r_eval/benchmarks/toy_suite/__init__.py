"""The toy suite: synthetic videos whose questions need perception and one reasoning step.

Small enough that a tiny model learns it on a CPU in minutes (``p2r-train recipe toy``),
hard enough that perception and reasoning fail separately. The four kinds of question are
described in :mod:`p2r_eval.benchmarks.toy_suite.scenes`. Everything is generated from a seed: the
same arguments give byte-identical files on every machine.

Layout of a suite folder (:func:`write_toy_suite`)::

    eval_toy.json, videos/test/        test split, Video-R1's eval format:
                                       p2r-eval --tasks toy --data-root ROOT
    validation/eval_toy.json, videos/  validation split, same format (--data-root ROOT/validation)
    train/train.json, videos/          training split, Video-R1's training format (VQA records)
    train/teacher.jsonl                a replay teacher for annotate: the rule-made CoT of each
                                       training item, a known fraction deliberately flawed
    train/teacher_flaws.json           which items are flawed, and how
    manifest.json                      sizes, seed, per-split chance accuracy

The splits have disjoint videos: every item draws its own scene from (seed, split, index).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from p2r_eval.benchmarks.toy_suite.scenes import (
    COUNT_RANGE,
    FRAMES,
    KINDS,
    LETTERS,
    SCENE_MAKERS,
    Scene,
    rule_target,
    think_text,
)
from p2r_eval.core.cache_root import build_once, cache_root
from p2r_eval.media import synthetic_media

FPS = 4
SPLITS = ("train", "validation", "test")
SPLIT_NUMBERS = {split: number for number, split in enumerate(SPLITS)}
DEFAULT_SIZES = {"train": 480, "validation": 80, "test": 160}
FLAW_EVERY = 5
"""Every 5th training item's teacher output is flawed (20%)."""
FLAWS = ("wrong_answer", "broken_template", "missing_fact")
"""What verification must drop (the first two) and what the sufficiency judge must drop."""
TASK_FILE = "eval_toy.json"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ToyItem:
    split: str
    index: int
    scene: Scene

    @property
    def id(self) -> str:
        return f"{self.split}-{self.index:04d}"

    def record(self, media_path: str) -> dict[str, Any]:
        """The item as a record of Video-R1's format (training and eval files alike)."""
        return {
            "problem_id": self.id,
            "problem": self.scene.question,
            "data_type": "video",
            "problem_type": self.scene.answer_type,
            "options": list(self.scene.lettered_options),
            "solution": f"<answer>{self.scene.answer}</answer>",
            "path": media_path,
            "data_source": "toy",
            "kind": self.scene.kind,
        }


def toy_items(split: str, count: int, seed: int = 0) -> Iterator[ToyItem]:
    """The first ``count`` items of ``split``: kinds in turn, each scene from its own rng."""
    for index in range(count):
        rng = np.random.default_rng([seed, SPLIT_NUMBERS[split], index])
        yield ToyItem(split, index, SCENE_MAKERS[KINDS[index % len(KINDS)]](rng))


def flaw_of(index: int) -> str | None:
    """The flaw the replay teacher puts in training item ``index`` (None: a correct trace)."""
    if index % FLAW_EVERY != FLAW_EVERY - 1:
        return None
    return FLAWS[(index // FLAW_EVERY) % len(FLAWS)]


def flawed_output(scene: Scene, flaw: str) -> str:
    """A teacher trace with ``flaw``: a wrong answer, a broken template (``</think>``
    missing), or an observation that leaves out the decisive fact."""
    target = rule_target(scene)
    if flaw == "broken_template":
        return target.replace("</think>", "", 1)
    if flaw == "wrong_answer":
        wrong = wrong_answer(scene)
        return target.replace(f"<answer>{scene.answer}</answer>", f"<answer>{wrong}</answer>")
    colour = scene.facts.get("colour") or scene.facts.get("first")
    vague = f"A {colour} square is on a grey background."
    return (f"<observation>{vague}</observation><think>{think_text(scene)}</think>"
            f"<answer>{scene.answer}</answer>")


def wrong_answer(scene: Scene) -> str:
    if scene.kind == "count":
        low, high = COUNT_RANGE
        return str(low if int(scene.answer) != low else high)
    letters = LETTERS[: len(scene.options)]
    return next(letter for letter in letters if letter != scene.answer)


def write_split(folder: Path, split: str, count: int, seed: int, records_file: str) -> list[Scene]:
    """Write ``count`` items of ``split``: videos under ``folder/videos/<split>/`` and the
    records file ``folder/records_file``. Returns the scenes in item order."""
    records, scenes = [], []
    for item in toy_items(split, count, seed):
        media = f"videos/{split}/{item.id}.mp4"
        synthetic_media.write_frames_video(folder / media, list(item.scene.frames), fps=FPS)
        records.append(item.record(media))
        scenes.append(item.scene)
    (folder / records_file).write_text(json.dumps(records, indent=1) + "\n")
    return scenes


def write_teacher(folder: Path, count: int, seed: int) -> dict[str, str]:
    """The replay teacher of the training split (``teacher.jsonl``) and its flaws
    (``teacher_flaws.json``, id -> flaw)."""
    flaws: dict[str, str] = {}
    with open(folder / "teacher.jsonl", "w", encoding="utf-8") as lines:
        for item in toy_items("train", count, seed):
            flaw = flaw_of(item.index)
            output = rule_target(item.scene) if flaw is None else flawed_output(item.scene, flaw)
            if flaw is not None:
                flaws[item.id] = flaw
            lines.write(json.dumps({"task": "annotate", "id": item.id, "output": output}) + "\n")
    (folder / "teacher_flaws.json").write_text(json.dumps(flaws, indent=1) + "\n")
    return flaws


def write_toy_suite(root: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write the whole suite into ``root`` (see the module docs); returns ``root``."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    root = Path(root)
    chance = {}
    for split, folder, records_file in (("test", root, TASK_FILE),
                                        ("validation", root / "validation", TASK_FILE),
                                        ("train", root / "train", "train.json")):
        folder.mkdir(parents=True, exist_ok=True)
        scenes = write_split(folder, split, sizes[split], seed, records_file)
        chance[split] = float(np.mean([scene.chance for scene in scenes]))
    write_teacher(root / "train", sizes["train"], seed)
    manifest = {"version": suite_version(), "seed": seed, "sizes": sizes, "frames": FRAMES,
                "fps": FPS, "chance": chance}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return root


def suite_version() -> str:
    """A digest of the code the suite's files come from (a change makes a new cached suite)."""
    from p2r_eval.benchmarks.toy_suite import scenes

    digest = hashlib.sha256()
    for module in (scenes.__file__, __file__, synthetic_media.__file__):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()[:12]


def prepare_toy_suite(sizes: dict[str, int] | None = None, seed: int = 0,
                      parent: Path | None = None) -> Path:
    """The suite for ``(sizes, seed)`` in the cache (``P2R_CACHE/toy``), written on first use.
    Safe when several processes ask at once (one writes under a lock, then renames)."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    parent = Path(parent) if parent is not None else cache_root() / "toy"
    name = f"{suite_version()}-seed{seed}-" + "-".join(str(sizes[s]) for s in SPLITS)
    return build_once(parent / name, MANIFEST, lambda folder: write_toy_suite(folder, sizes, seed))
