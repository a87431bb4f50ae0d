"""The toy suite's four kinds of question: what each video shows, and the text made from it.

Every scene is a few coloured squares on a grey background, 8 frames of 56x56 pixels. Frames
come in pairs (Qwen2.5-VL merges two frames into one temporal patch), so a square that
appears or disappears does so on a pair boundary: 4 time slots of 2 frames.

==========  ==========================================================  =====================
kind        what the video shows                                         the question
==========  ==========================================================  =====================
count       one square per slot, of some colour                          how many red ones?
direction   one square crossing the frame from one edge to the other     which way does it move?
order       a square, then (a slot or two later) one of another colour   which colour came first?
size        one square whose side changes between the first and last     how does its size change?
==========  ==========================================================  =====================

Each scene states its facts in one fixed sentence (the observation) from which the answer
follows by one step of reasoning (the think): count a colour in a list, turn a start and an
end edge into a direction, a start and an end size into a change. Options come in a fixed
order (directions left, right, up, down; colours red, green, blue, yellow; sizes larger,
smaller, unchanged): at toy scale, looking a shuffled option up by its word is a lesson of
its own that the tiny model learns slowly (docs/toy.md), and it is not what the suite asks.

:func:`answer_word_from_observation` is the inverse: it reads those sentences back from any
text and derives the answer they determine; the toy judge (:mod:`p2r_eval.judge.toy_backend`)
uses it to decide sufficiency.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 215, 40),
}
BACKGROUND = 128
FRAME_SIDE = 56
FRAMES = 8
SLOTS = 4
FRAMES_PER_SLOT = FRAMES // SLOTS
SQUARE = 16
SIZES = {"small": 10, "medium": 18, "large": 30}
DIRECTIONS = ("left", "right", "up", "down")
EDGES = {"left": ("right", "left"), "right": ("left", "right"), "up": ("bottom", "top"),
         "down": ("top", "bottom")}
"""direction -> (edge the square starts at, edge it ends at)."""
SIZE_CHANGES = ("larger", "smaller", "unchanged")
KINDS = ("count", "direction", "order", "size")
COUNT_RANGE = (1, 3)
LETTERS = "ABCD"

QUESTIONS = {
    "count": "How many {colour} squares appear in the video?",
    "direction": "Which way does the square move?",
    "order": "Which colour of square appears first?",
    "size": "How does the size of the square change?",
}


@dataclass(frozen=True)
class Scene:
    """One toy video and its question. ``facts`` are what the observation states;
    ``options`` are the option words in the order shown (empty for a numeric answer)."""

    kind: str
    frames: tuple[np.ndarray, ...]
    facts: dict[str, Any]
    question: str
    options: tuple[str, ...]
    answer: str

    @property
    def answer_type(self) -> str:
        return "numerical" if self.kind == "count" else "multiple choice"

    @property
    def lettered_options(self) -> tuple[str, ...]:
        return tuple(f"{LETTERS[i]}. {word}" for i, word in enumerate(self.options))

    @property
    def chance(self) -> float:
        """The accuracy of a uniform guess among the possible answers."""
        if self.kind == "count":
            return 1.0 / (COUNT_RANGE[1] - COUNT_RANGE[0] + 1)
        return 1.0 / len(self.options)


def blank_frames() -> np.ndarray:
    return np.full((FRAMES, FRAME_SIDE, FRAME_SIDE, 3), BACKGROUND, dtype=np.uint8)


def paint(frame: np.ndarray, colour: str, top: int, left: int, side: int) -> None:
    frame[top:top + side, left:left + side] = COLOURS[colour]


def slot_frames(slot: int) -> range:
    return range(slot * FRAMES_PER_SLOT, (slot + 1) * FRAMES_PER_SLOT)


def random_corner(rng: np.random.Generator, side: int) -> tuple[int, int]:
    top, left = rng.integers(0, FRAME_SIDE - side + 1, size=2)
    return int(top), int(left)


def shuffled(rng: np.random.Generator, words: Sequence[str]) -> tuple[str, ...]:
    return tuple(words[i] for i in rng.permutation(len(words)))


def count_scene(rng: np.random.Generator) -> Scene:
    colour = str(rng.choice(list(COLOURS)))
    count = int(rng.integers(COUNT_RANGE[0], COUNT_RANGE[1] + 1))
    others = [c for c in COLOURS if c != colour]
    sequence = [colour] * count + [str(rng.choice(others)) for _ in range(SLOTS - count)]
    sequence = list(shuffled(rng, sequence))
    frames = blank_frames()
    for slot, shown in enumerate(sequence):
        top, left = random_corner(rng, SQUARE)
        for index in slot_frames(slot):
            paint(frames[index], shown, top, left, SQUARE)
    return Scene("count", tuple(frames), {"sequence": sequence, "colour": colour},
                 QUESTIONS["count"].format(colour=colour), (), str(count))


def direction_scene(rng: np.random.Generator) -> Scene:
    colour = str(rng.choice(list(COLOURS)))
    direction = str(rng.choice(DIRECTIONS))
    across = int(rng.integers(0, FRAME_SIDE - SQUARE + 1))
    travel = np.linspace(0, FRAME_SIDE - SQUARE, FRAMES).round().astype(int)
    if direction in ("left", "up"):
        travel = travel[::-1]
    frames = blank_frames()
    for index, along in enumerate(travel):
        top, left = (across, int(along)) if direction in ("left", "right") else (int(along), across)
        paint(frames[index], colour, top, left, SQUARE)
    start, end = EDGES[direction]
    return Scene("direction", tuple(frames), {"colour": colour, "start": start, "end": end},
                 QUESTIONS["direction"], DIRECTIONS, LETTERS[DIRECTIONS.index(direction)])


def order_scene(rng: np.random.Generator) -> Scene:
    first, second = (str(c) for c in rng.choice(list(COLOURS), size=2, replace=False))
    later_slot = int(rng.integers(1, SLOTS))
    halves = rng.permutation(2)
    frames = blank_frames()
    for colour, from_slot, half in ((first, 0, halves[0]), (second, later_slot, halves[1])):
        top = int(rng.integers(0, FRAME_SIDE - SQUARE + 1))
        left = int(half) * FRAME_SIDE // 2 + int(rng.integers(0, FRAME_SIDE // 2 - SQUARE + 1))
        for slot in range(from_slot, SLOTS):
            for index in slot_frames(slot):
                paint(frames[index], colour, top, left, SQUARE)
    options = tuple(COLOURS)
    return Scene("order", tuple(frames), {"first": first, "second": second},
                 QUESTIONS["order"], options, LETTERS[options.index(first)])


def size_scene(rng: np.random.Generator) -> Scene:
    colour = str(rng.choice(list(COLOURS)))
    change = str(rng.choice(SIZE_CHANGES))
    start, end = {"larger": ("small", "large"), "smaller": ("large", "small"),
                  "unchanged": (str(rng.choice(list(SIZES))),) * 2}[change]
    frames = blank_frames()
    centre = int(rng.integers(SIZES["large"] // 2, FRAME_SIDE - SIZES["large"] // 2 + 1))
    for index in range(FRAMES):
        side = SIZES[start] if index < FRAMES // 2 else SIZES[end]
        corner = centre - side // 2
        paint(frames[index], colour, corner, corner, side)
    return Scene("size", tuple(frames), {"colour": colour, "start": start, "end": end},
                 QUESTIONS["size"], SIZE_CHANGES, LETTERS[SIZE_CHANGES.index(change)])


SCENE_MAKERS = {"count": count_scene, "direction": direction_scene, "order": order_scene,
                "size": size_scene}


# -- text: the observation states the facts, the think reasons from them --------------------
def observation_text(kind: str, facts: dict[str, Any]) -> str:
    """The sentence that states the facts of a scene (and nothing else)."""
    if kind == "count":
        return "Squares appear one at a time: " + ", ".join(facts["sequence"]) + "."
    if kind == "direction":
        return f"The {facts['colour']} square starts at the {facts['start']} and ends at the " \
               f"{facts['end']}."
    if kind == "order":
        return f"First a {facts['first']} square appears, then a {facts['second']} square."
    return f"The {facts['colour']} square starts {facts['start']} and ends {facts['end']}."


def think_text(scene: Scene) -> str:
    """One step of reasoning from the stated facts to the answer."""
    facts = scene.facts
    if scene.kind == "count":
        return f"{facts['colour'].capitalize()} is in the list {scene.answer} times, so the " \
               f"answer is {scene.answer}."
    word = scene.options[LETTERS.index(scene.answer)]
    if scene.kind == "direction":
        reason = f"From the {facts['start']} to the {facts['end']} is moving {word}"
    elif scene.kind == "order":
        reason = f"{facts['first'].capitalize()} came before {facts['second']}, so {word} is first"
    else:
        reason = f"From {facts['start']} to {facts['end']} is {word}"
    return f"{reason}, which is option {scene.answer}."


def rule_target(scene: Scene) -> str:
    """The process-aware CoT target of a scene: observation, think, answer."""
    return (f"<observation>{observation_text(scene.kind, scene.facts)}</observation>"
            f"<think>{think_text(scene)}</think><answer>{scene.answer}</answer>")


# -- reading the facts back: what an observation determines ------------------------------------
_WORD = r"([a-z]+)"
_COUNT_FACTS = re.compile(r"squares appear one at a time:\s*([a-z ,]+)", re.IGNORECASE)
_DIRECTION_FACTS = re.compile(rf"starts at the {_WORD} and ends at the {_WORD}", re.IGNORECASE)
_ORDER_FACTS = re.compile(rf"first an? {_WORD} square appears", re.IGNORECASE)
_SIZE_FACTS = re.compile(rf"square starts {_WORD} and ends {_WORD}", re.IGNORECASE)
_COUNT_QUESTION = re.compile(r"^How many ([a-z]+) squares appear in the video\?")
_END_TO_DIRECTION = {edges: direction for direction, edges in EDGES.items()}


def question_kind(question: str) -> tuple[str, str | None] | None:
    """The kind of a toy question (and the asked colour for ``count``); None for any other
    question."""
    match = _COUNT_QUESTION.match(question)
    if match and match.group(1) in COLOURS:
        return "count", match.group(1)
    for kind, text in QUESTIONS.items():
        if kind != "count" and question.startswith(text):
            return kind, None
    return None


def answer_word_from_observation(kind: str, colour: str | None, observation: str) -> str | None:
    """The answer (a count, or an option word) the observation's stated facts determine;
    None when it does not state them."""
    if kind == "count":
        match = _COUNT_FACTS.search(observation)
        if not match:
            return None
        listed = [word.strip().lower() for word in match.group(1).split(",") if word.strip()]
        return str(listed.count(colour)) if listed and set(listed) <= set(COLOURS) else None
    if kind == "direction":
        match = _DIRECTION_FACTS.search(observation)
        if not match:
            return None
        return _END_TO_DIRECTION.get((match.group(1).lower(), match.group(2).lower()))
    if kind == "order":
        match = _ORDER_FACTS.search(observation)
        first = match.group(1).lower() if match else None
        return first if first in COLOURS else None
    match = _SIZE_FACTS.search(observation)
    if not match or match.group(1).lower() not in SIZES or match.group(2).lower() not in SIZES:
        return None
    order = list(SIZES)
    step = order.index(match.group(2).lower()) - order.index(match.group(1).lower())
    return "larger" if step > 0 else "smaller" if step < 0 else "unchanged"
