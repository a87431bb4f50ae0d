"""Split a sampled completion into perception tokens and reasoning tokens.

The split is found on the sampled token ids themselves: each id is decoded on its own
(memoised per id), the pieces are concatenated, and :func:`p2r_eval.core.template.parse` (the one
parser of model outputs) finds the template's blocks in that text. Token ``k`` is a
perception token when its piece overlaps a perception span of the text. This works whether
the six tags are single tokens (the demo model, checkpoints that added them) or several
(stock Qwen2.5-VL, where ``</observation>`` may merge with a neighbouring character), and
never re-tokenises text, which could give ids other than those sampled.

The rule, from the template ``<observation>…</observation><think>…</think><answer>…</answer>``:
a token gets the advantage of the process whose reward judges it. The perception reward
judges the observation block and whether the completion *begins* with it
(:func:`p2r_train.rl.rewards.perception_format_reward`), so the perception tokens are

- the **opening**: everything from the completion's start up to and including its first
  template tag, the place where the observation should begin. Deciding not to observe
  (opening with ``<think>``, or with free text) is a perception decision, and the negative
  perception advantage of a completion without an observation lands on these tokens. A
  completion without any tag has the first token as its opening;
- the **observation block**, wherever it is: a closed ``<observation>…</observation>``
  through its closing tag; one never closed up to the first ``<think>`` or ``<answer>``
  block after it, or to the end of the completion.

Everything else is reasoning: a ``<think>`` block written before the observation is reasoning
(only its opening tag, the choice not to observe first, is perception), and so is text after
the observation. In the well-formed case the two spans touch, and the perception tokens are
the completion's first tokens through ``</observation>``.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from p2r_eval.core.template import THINK_ANSWER_TAGS, first_tag_span, parse

OBSERVATION_OPEN = "<observation>"

Span = tuple[int, int]  # [start, end) offsets, characters or tokens


@dataclass(frozen=True)
class ProcessSplit:
    """A completion of ``total_tokens`` tokens whose ``perception_spans`` (token ranges
    ``[start, end)``, disjoint, in order) are perception; every other token is reasoning."""

    perception_spans: tuple[Span, ...]
    total_tokens: int

    @classmethod
    def leading(cls, perception_tokens: int, total_tokens: int) -> ProcessSplit:
        """The first ``perception_tokens`` tokens are perception (the well-formed case)."""
        spans = ((0, perception_tokens),) if perception_tokens else ()
        return cls(spans, total_tokens)

    @property
    def perception_tokens(self) -> int:
        return sum(end - start for start, end in self.perception_spans)

    @property
    def reasoning_tokens(self) -> int:
        return self.total_tokens - self.perception_tokens


class TokenPieces:
    """The text of each token id decoded alone (special tokens kept), memoised per id."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._pieces: dict[int, str] = {}

    def __call__(self, token_ids: Sequence[int]) -> list[str]:
        missing = sorted({i for i in token_ids if i not in self._pieces})
        if missing:
            decoded = self.tokenizer.batch_decode(
                [[i] for i in missing], skip_special_tokens=False,
                clean_up_tokenization_spaces=False,
            )
            self._pieces.update(zip(missing, decoded, strict=True))
        return [self._pieces[i] for i in token_ids]


def observation_span(text: str) -> Span | None:
    """Characters of the observation block (see module docs), ``None`` without one."""
    segments = parse(text)
    if "observation" in segments.block_spans:
        return segments.block_spans["observation"]
    opened = text.find(OBSERVATION_OPEN)
    if opened < 0:
        return None
    reasoning_starts = [
        segments.block_spans[tag][0] for tag in THINK_ANSWER_TAGS
        if tag in segments.block_spans and segments.block_spans[tag][0] > opened
    ]
    return opened, min(reasoning_starts, default=len(text))


def perception_char_spans(text: str) -> list[Span]:
    """The perception spans of ``text`` in characters: the opening and the observation block
    (module docs), merged when they touch. The opening of a text without tags is its first
    character, which :func:`split_completion` widens to the first token."""
    if not text:
        return []
    first_tag = first_tag_span(text)
    spans = [(0, first_tag[1] if first_tag else 1)]
    observation = observation_span(text)
    if observation is not None:
        if observation[0] <= spans[0][1]:
            spans = [(0, max(spans[0][1], observation[1]))]
        else:
            spans.append(observation)
    return spans


def _token_span(ends: list[int], chars: Span) -> Span:
    """Tokens whose pieces (ending at the cumulative offsets ``ends``) overlap ``chars``."""
    first = bisect.bisect_right(ends, chars[0])
    last = bisect.bisect_left(ends, chars[1])
    return first, min(last + 1, len(ends))


def split_completion(token_ids: Sequence[int], pieces: TokenPieces) -> ProcessSplit:
    """Which tokens of one completion are perception (module docs)."""
    texts = pieces(token_ids)
    ends = list(itertools.accumulate(len(piece) for piece in texts))
    spans = [_token_span(ends, chars) for chars in perception_char_spans("".join(texts))]
    return ProcessSplit(tuple(s for s in spans if s[1] > s[0]), len(texts))


def perception_mask(splits: Sequence[ProcessSplit], width: int,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """(B, width) bool, True on each completion's perception tokens (right-padded layout)."""
    return spans_mask(span_table(splits, device), width)


MAX_SPANS = 2  # the opening and the observation block


def span_table(splits: Sequence[ProcessSplit], device: torch.device | str | None = None
               ) -> torch.Tensor:
    """(B, MAX_SPANS, 2) long: each completion's perception spans, padded with empty ones
    (a fixed shape, so that processes can gather it)."""
    table = torch.zeros(len(splits), MAX_SPANS, 2, dtype=torch.long)
    for row, split in enumerate(splits):
        for index, (start, end) in enumerate(split.perception_spans):
            table[row, index] = torch.tensor([start, end])
    return table.to(device)


def spans_mask(spans: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) bool from a :func:`span_table`: True inside any of a row's spans."""
    positions = torch.arange(width, device=spans.device)[None, None, :]
    inside = (positions >= spans[:, :, :1]) & (positions < spans[:, :, 1:])
    return inside.any(dim=1)
