"""Split a sampled completion into perception tokens and reasoning tokens.

The boundary is a token index, found on the sampled token ids themselves: each id is decoded
on its own (memoised per id), the pieces are concatenated, and :func:`p2r_eval.template.parse`
(the one parser of model outputs) finds the observation block in that text. Token ``k``
is a perception token when its piece starts before the end of the ``</observation>`` tag.
This works whether the six tags are single tokens (the demo model, checkpoints that added
them) or several (stock Qwen2.5-VL, where ``</observation>`` may merge with a neighbouring
character), and never re-tokenises text, which could give ids other than those sampled.

Where the perception segment ends:

- a closed ``<observation>…</observation>`` block: right after its closing tag (any text
  before the block belongs to it too);
- an ``<observation>`` that is never closed: at the first ``<think>`` or ``<answer>`` block
  after it, or at the end of the completion;
- no ``<observation>`` at all: there is no perception segment (every token is reasoning).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from p2r_eval.template import THINK_ANSWER_TAGS, parse

OBSERVATION_OPEN = "<observation>"


@dataclass(frozen=True)
class ProcessSplit:
    """Completion tokens ``[0, perception_tokens)`` are perception, the rest reasoning."""

    perception_tokens: int
    total_tokens: int

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


def perception_end(text: str) -> int:
    """The character offset where the perception segment of ``text`` ends (see module docs)."""
    segments = parse(text)
    if "observation" in segments.block_spans:
        return segments.block_spans["observation"][1]
    opened = text.find(OBSERVATION_OPEN)
    if opened < 0:
        return 0
    reasoning_starts = [
        segments.block_spans[tag][0] for tag in THINK_ANSWER_TAGS
        if tag in segments.block_spans and segments.block_spans[tag][0] > opened
    ]
    return min(reasoning_starts, default=len(text))


def split_completion(token_ids: Sequence[int], pieces: TokenPieces) -> ProcessSplit:
    """Where the perception tokens of one completion end."""
    texts = pieces(token_ids)
    ends = list(itertools.accumulate(len(piece) for piece in texts))
    boundary = perception_end("".join(texts))
    count = 0 if boundary == 0 else min(bisect.bisect_left(ends, boundary) + 1, len(texts))
    return ProcessSplit(perception_tokens=count, total_tokens=len(texts))


def perception_mask(splits: Sequence[ProcessSplit], width: int,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """(B, width) bool, True on each completion's perception tokens (right-padded layout)."""
    counts = torch.tensor([s.perception_tokens for s in splits], device=device)
    return torch.arange(width, device=device)[None, :] < counts[:, None]
