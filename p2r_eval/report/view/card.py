"""A case card: one sample as a self-contained SVG figure (frame strip, question, the output's
segments highlighted, answer against ground truth), for papers and slides. The figure the
paper's case study draws by hand."""

from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass
from pathlib import Path

from p2r_eval.core.template import TAGS, parse
from p2r_eval.core.untrusted import visible_controls
from p2r_eval.report.view.frames import FrameStrip
from p2r_eval.report.view.samples import SampleView

CARD_WIDTH = 960
MARGIN = 16
LINE_HEIGHT = 17
CHARACTERS_PER_LINE = 118
MAX_LINES_PER_BLOCK = 12
CARD_FRAMES = 8
THUMB_WIDTH = 96
THUMB_HEIGHT = 72


@dataclass(frozen=True)
class CardFrame:
    x: int
    data_uri: str
    caption: str


@dataclass(frozen=True)
class CardBlock:
    """A block of wrapped text: ``kind`` is a segment tag, ``question`` or ``result``."""

    kind: str
    label: str
    y: int
    lines: tuple[str, ...]

    @property
    def height(self) -> int:
        return (len(self.lines) + 1) * LINE_HEIGHT + 6


@dataclass(frozen=True)
class CardLayout:
    title: str
    width: int
    height: int
    frames: tuple[CardFrame, ...]
    frames_y: int
    blocks: tuple[CardBlock, ...]


def wrapped(text: str) -> tuple[str, ...]:
    """``text`` in card lines; characters that are not printable (XML forbids most control
    characters) are written as ``\\uXXXX``."""
    lines = [visible_controls(line) for paragraph in text.strip().split("\n")
             for line in (textwrap.wrap(paragraph, CHARACTERS_PER_LINE) or [""])]
    if len(lines) > MAX_LINES_PER_BLOCK:
        lines = [*lines[: MAX_LINES_PER_BLOCK - 1], "[…]"]
    return tuple(lines) or ("",)


def chosen_frames(strip: FrameStrip, site_root: Path) -> tuple[CardFrame, ...]:
    """Up to ``CARD_FRAMES`` thumbnails spread over the strip, embedded as data URIs."""
    thumbnails = strip.thumbnails
    if len(thumbnails) > CARD_FRAMES:
        step = (len(thumbnails) - 1) / (CARD_FRAMES - 1)
        thumbnails = tuple(thumbnails[round(i * step)] for i in range(CARD_FRAMES))
    frames = []
    for index, thumbnail in enumerate(thumbnails):
        data = base64.b64encode((site_root / thumbnail.path).read_bytes()).decode("ascii")
        caption = "image" if thumbnail.timestamp is None else f"{thumbnail.timestamp:.1f} s"
        frames.append(CardFrame(MARGIN + index * (THUMB_WIDTH + 6),
                                f"data:image/jpeg;base64,{data}", caption))
    return tuple(frames)


def text_blocks(sample: SampleView) -> list[tuple[str, str, str]]:
    """(kind, label, text) of the card's blocks, in reading order."""
    blocks = []
    if sample.item is not None:
        question = "\n".join([sample.item.question, *sample.item.options])
        blocks.append(("question", "Question", question))
    segments = parse(sample.output or "")
    blocks += [(tag, tag.capitalize(), segments.contents[tag])
               for tag in TAGS if segments.present(tag)]
    if sample.output is not None and not any(segments.present(tag) for tag in TAGS):
        blocks.append(("outside", "Output (no template segment)", sample.output))
    reference = sample.item.answer if sample.item is not None else "unknown"
    extracted = sample.record.extracted
    flags = ", ".join(sample.failure_kinds) or "none"
    blocks.append(("result", "Result",
                   f"extracted answer: {extracted} · ground truth: {reference} · "
                   f"{sample.status} · failure kinds: {flags}"))
    return blocks


def card_layout(sample: SampleView, strip: FrameStrip, site_root: Path) -> CardLayout:
    frames = chosen_frames(strip, site_root)
    y = MARGIN + 28
    frames_y = y
    if frames:
        y += THUMB_HEIGHT + 28
    blocks = []
    for kind, label, text in text_blocks(sample):
        block = CardBlock(kind, label, y, wrapped(text))
        blocks.append(block)
        y += block.height + 8
    return CardLayout(f"{sample.task} · {sample.id}", CARD_WIDTH, y + MARGIN, frames, frames_y,
                      tuple(blocks))
