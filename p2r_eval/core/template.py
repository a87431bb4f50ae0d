"""The process-aware template: one parser for every model output.

A process-aware output reads ``<observation>…</observation><think>…</think><answer>…</answer>``.
:func:`parse` never raises on model text. It returns each segment's content (or ``None``),
the character spans that training needs to split perception from reasoning tokens, and
flags that describe every way the text deviates from the template.

Segment content follows the Video-R1 extraction rule, tag by tag: the text between the
first opening tag and the first closing tag after it. (So ``parse(t).answer`` is exactly
what ``re.search(r"<answer>(.*?)</answer>", t, re.DOTALL)`` finds, before stripping.)
Structural flags (nesting, text outside the tags, order) come from one left-to-right walk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TAGS: tuple[str, ...] = ("observation", "think", "answer")
PROCESS_AWARE_TAGS: tuple[str, ...] = TAGS
THINK_ANSWER_TAGS: tuple[str, ...] = ("think", "answer")

_TAG_TOKEN = re.compile(r"<(/?)(observation|think|answer)>")


@dataclass(frozen=True)
class Segments:
    """A parsed model output. Spans are ``(start, end)`` character offsets into ``text``."""

    text: str
    contents: dict[str, str] = field(default_factory=dict)
    content_spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    block_spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    unclosed: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    stray_closing: tuple[str, ...] = ()
    nested: bool = False
    outside_text: bool = False

    @property
    def observation(self) -> str | None:
        return self.contents.get("observation")

    @property
    def think(self) -> str | None:
        return self.contents.get("think")

    @property
    def answer(self) -> str | None:
        return self.contents.get("answer")

    def present(self, tag: str) -> bool:
        """True when the tag was opened and closed at least once."""
        return tag in self.contents

    @property
    def truncated(self) -> bool:
        """True when a tag was opened and never closed: typically an output cut at max tokens."""
        return bool(self.unclosed)

    def in_order(self, tags: tuple[str, ...] = TAGS) -> bool:
        """True when the present segments among ``tags`` follow each other without overlap."""
        blocks = [self.block_spans[t] for t in tags if t in self.block_spans]
        return all(a[1] <= b[0] for a, b in zip(blocks, blocks[1:], strict=False))

    def deviations(self, required: tuple[str, ...] = TAGS) -> list[str]:
        """Reasons this output breaks the template whose segments are ``required``, in order.

        Reason codes: ``missing:<tag>``, ``empty:<tag>``, ``unclosed:<tag>``,
        ``duplicate:<tag>``, ``stray_closing:<tag>``, ``misordered``, ``nested``,
        ``outside_text``. An empty list means the output is well formed.
        """
        reasons = [f"missing:{t}" for t in required if not self.present(t)]
        reasons += [
            f"empty:{t}" for t in required if self.present(t) and not self.contents[t].strip()
        ]
        reasons += [f"unclosed:{t}" for t in self.unclosed]
        reasons += [f"duplicate:{t}" for t in self.duplicates]
        reasons += [f"stray_closing:{t}" for t in self.stray_closing]
        if not self.in_order(required):
            reasons.append("misordered")
        if self.nested:
            reasons.append("nested")
        if self.outside_text:
            reasons.append("outside_text")
        return reasons

    def well_formed(self, required: tuple[str, ...] = TAGS) -> bool:
        return not self.deviations(required)


def first_tag_span(text: str) -> tuple[int, int] | None:
    """The character span of the first template tag (opening or closing) in ``text``."""
    match = _TAG_TOKEN.search(text)
    return match.span() if match else None


def parse(text: str) -> Segments:
    """Parse any model output into segments and flags. Never raises on a string."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    tokens = [
        (m.start(), m.end(), m.group(2), m.group(1) == "/") for m in _TAG_TOKEN.finditer(text)
    ]
    contents, content_spans, block_spans = _first_segments(text, tokens)
    walk = _walk(text, tokens)
    return Segments(
        text=text,
        contents=contents,
        content_spans=content_spans,
        block_spans=block_spans,
        unclosed=walk.unclosed,
        duplicates=walk.duplicates,
        stray_closing=walk.stray_closing,
        nested=walk.nested,
        outside_text=walk.outside_text,
    )


_Token = tuple[int, int, str, bool]  # start, end, tag name, is closing


def _first_segments(
    text: str, tokens: list[_Token]
) -> tuple[dict[str, str], dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Per tag: the first opening token and the first closing token after it."""
    contents: dict[str, str] = {}
    content_spans: dict[str, tuple[int, int]] = {}
    block_spans: dict[str, tuple[int, int]] = {}
    for tag in TAGS:
        opening = next((t for t in tokens if t[2] == tag and not t[3]), None)
        if opening is None:
            continue
        closing = next((t for t in tokens if t[2] == tag and t[3] and t[0] >= opening[1]), None)
        if closing is None:
            continue
        contents[tag] = text[opening[1] : closing[0]]
        content_spans[tag] = (opening[1], closing[0])
        block_spans[tag] = (opening[0], closing[1])
    return contents, content_spans, block_spans


@dataclass(frozen=True)
class _WalkResult:
    unclosed: tuple[str, ...]
    duplicates: tuple[str, ...]
    stray_closing: tuple[str, ...]
    nested: bool
    outside_text: bool


def _walk(text: str, tokens: list[_Token]) -> _WalkResult:
    """One left-to-right pass: which tags nest, repeat, stay open, and what lies outside."""
    open_tag: str | None = None
    opened_count = dict.fromkeys(TAGS, 0)
    stray: list[str] = []
    nested = False
    outside = False
    last_end = 0
    for start, end, tag, closing in tokens:
        if open_tag is None:
            outside = outside or bool(text[last_end:start].strip())
            if closing:
                stray.append(tag)
            else:
                open_tag = tag
                opened_count[tag] += 1
            last_end = end
        elif closing and tag == open_tag:
            open_tag = None
            last_end = end
        else:
            nested = True
    if open_tag is None:
        outside = outside or bool(text[last_end:].strip())
    return _WalkResult(
        unclosed=(open_tag,) if open_tag else (),
        duplicates=tuple(t for t in TAGS if opened_count[t] > 1),
        stray_closing=tuple(dict.fromkeys(stray)),
        nested=nested,
        outside_text=outside,
    )
