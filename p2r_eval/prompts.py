"""Prompt styles. Each style is a named, versioned text recipe; its hash goes into results.

- ``r1``: Video-R1's think/answer template, verbatim (src/eval_bench.py).
- ``p2r``: the process-aware template: observation, then think, then answer. VideoP2R's exact
  eval wording is not public; this wording is p2r's and is versioned here.
- ``direct``: the question and the answer-format instruction only.
"""

from __future__ import annotations

import hashlib

from p2r_eval.items import Item

R1_QUESTION_TEMPLATE = (
    "{Question}\n"
    "Please think about this question as if you were a human pondering deeply. "
    "Engage in an internal dialogue using expressions such as 'let me think', 'wait', 'Hmm', "
    "'oh, I see', 'let's break it down', etc, or other natural language thought expressions "
    "It's encouraged to include self-reflection or verification in the reasoning process. "
    "Provide your detailed reasoning between the <think> and </think> tags, and then give your "
    "final answer between the <answer> and </answer> tags."
)

P2R_QUESTION_TEMPLATE = (
    "{Question}\n"
    "First describe the visual evidence relevant to the question between the <observation> and "
    "</observation> tags: only what is seen in the video, no conclusions. Then reason step by "
    "step over that evidence between the <think> and </think> tags, and finally give your final "
    "answer between the <answer> and </answer> tags."
)

DIRECT_QUESTION_TEMPLATE = "{Question}\nGive your final answer between the <answer> and </answer> tags."

TYPE_TEMPLATE = {
    "multiple choice": " Please provide only the single option letter (e.g., A, B, C, D, etc.) "
    "within the <answer> </answer> tags.",
    "numerical": " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> "
    "</answer> tags.",
    "regression": " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> "
    "</answer> tags.",
    "OCR": " Please transcribe text from the image/video clearly and provide your text answer "
    "within the <answer> </answer> tags.",
    "free-form": " Please provide your text answer within the <answer> </answer> tags.",
    "open-ended": " Please provide your text answer within the <answer> </answer> tags.",
}

STYLE_TEMPLATES = {
    "r1": R1_QUESTION_TEMPLATE,
    "p2r": P2R_QUESTION_TEMPLATE,
    "direct": DIRECT_QUESTION_TEMPLATE,
}
PROMPT_STYLES = tuple(STYLE_TEMPLATES)
PROMPT_VERSION = "1"


def question_with_options(item: Item) -> str:
    """Video-R1's question text: for multiple choice ``problem + "Options:\\n" + one option a
    line`` (no newline before "Options:"); otherwise the bare question."""
    if item.answer_type == "multiple choice" and item.options:
        return item.question + "Options:\n" + "".join(option + "\n" for option in item.options)
    return item.question


def build_prompt(item: Item, style: str) -> str:
    """The user-turn text for ``item`` in ``style`` (the video goes before it)."""
    if style not in STYLE_TEMPLATES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {', '.join(PROMPT_STYLES)}")
    return STYLE_TEMPLATES[style].format(Question=question_with_options(item)) + TYPE_TEMPLATE[
        item.answer_type
    ]


def style_hash(style: str) -> str:
    """A short hash of everything that makes up a style's text, recorded in results."""
    material = STYLE_TEMPLATES[style] + "".join(f"{k}={v}" for k, v in sorted(TYPE_TEMPLATE.items()))
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


