"""Prompt styles. Each style is a named, versioned text recipe; its hash goes into results.

- ``r1``: Video-R1's think/answer template, verbatim (src/eval_bench.py).
- ``p2r``: the process-aware template: observation, then think, then answer. VideoP2R's exact
  eval wording is not public; this wording is p2r's and is versioned here.
- ``direct``: the question and the answer-format instruction only.
- ``text-only``: the perception probe's reasoner prompt: a perceiver's observation given as
  text in place of the video (item.meta["observation"]), then the reasoner's own prompt
  (style item.meta["reasoner_style"]). Its wording lives in tasks/probe.yaml.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import p2r_tasks
import yaml

from p2r_eval.core.answer_types import ANSWER_TYPE_RECORDS, answer_type
from p2r_eval.core.items import Item
from p2r_eval.core.template import PROCESS_AWARE_TAGS, THINK_ANSWER_TAGS
from p2r_eval.core.unicode_text import valid_unicode

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

DIRECT_QUESTION_TEMPLATE = (
    "{Question}\nGive your final answer between the <answer> and </answer> tags."
)

STYLE_TEMPLATES = {
    "r1": R1_QUESTION_TEMPLATE,
    "p2r": P2R_QUESTION_TEMPLATE,
    "direct": DIRECT_QUESTION_TEMPLATE,
}
TEXT_ONLY_STYLE = "text-only"
PROMPT_STYLES = (*STYLE_TEMPLATES, TEXT_ONLY_STYLE)
REQUIRED_TAGS = {
    "p2r": PROCESS_AWARE_TAGS,
    "r1": THINK_ANSWER_TAGS,
    "direct": ("answer",),
    TEXT_ONLY_STYLE: THINK_ANSWER_TAGS,
}
"""The template segments each style asks the model for (format compliance is judged on these)."""
PROBE_SPEC_PATH = Path(p2r_tasks.__file__).resolve().parent / "probe.yaml"
PROMPT_VERSION = "1"


def question_with_options(item: Item) -> str:
    """Video-R1's question text: for multiple choice ``problem + "Options:\\n" + one option a
    line`` (no newline before "Options:"; the header even when the options list is empty, as
    Video-R1 writes it); otherwise the bare question."""
    if item.answer_type == "multiple choice":
        return item.question + "Options:\n" + "".join(option + "\n" for option in item.options)
    return item.question


def build_prompt(item: Item, style: str) -> str:
    """The user-turn text for ``item`` in ``style`` (the video goes before it); a lone
    surrogate in the item's text becomes U+FFFD (a tokenizer takes only valid Unicode)."""
    if style == TEXT_ONLY_STYLE:
        return text_only_prompt(item)
    if style not in STYLE_TEMPLATES:
        choices = ", ".join(PROMPT_STYLES)
        raise ValueError(f"unknown prompt style {style!r}; choose one of {choices}")
    question = STYLE_TEMPLATES[style].format(Question=question_with_options(item))
    return valid_unicode(question + answer_type(item.answer_type).prompt_suffix)


@lru_cache(maxsize=1)
def probe_spec() -> dict[str, Any]:
    """tasks/probe.yaml: the perception probe's prompt styles and text-only wording."""
    return yaml.safe_load(PROBE_SPEC_PATH.read_text(encoding="utf-8"))


def neutralise_tag(text: str, tag: str) -> str:
    """Make ``text`` unable to close (or open) ``<tag>``: untrusted text stays inside its block."""
    return text.replace(f"</{tag}>", f"</ {tag}>").replace(f"<{tag}>", f"< {tag}>")


def text_only_prompt(item: Item) -> str:
    """The probe reasoner's prompt: the perceiver's observation as text, then the question."""
    observation = neutralise_tag(item.meta.get("observation") or "", "video_description")
    prefix = probe_spec()["text_only_prefix"].format(observation=observation)
    return prefix + "\n" + build_prompt(item, item.meta.get("reasoner_style", "r1"))


def style_hash(style: str) -> str:
    """A short hash of everything that makes up a style's text, recorded in results."""
    if style == TEXT_ONLY_STYLE:
        material = probe_spec()["text_only_prefix"] + "".join(map(style_hash, STYLE_TEMPLATES))
        return hashlib.sha256(material.encode()).hexdigest()[:12]
    type_texts = "".join(f"{name}={ANSWER_TYPE_RECORDS[name].prompt_suffix}"
                         for name in sorted(ANSWER_TYPE_RECORDS))
    material = STYLE_TEMPLATES[style] + type_texts
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


