"""The perception/reasoning split of sampled completions, on hand-made token ids, with tags
as single tokens (the demo tokenizer) and as several tokens (the same BPE without them)."""

from __future__ import annotations

import pytest
import torch
from p2r_train.segments import TokenPieces, perception_end, perception_mask, split_completion

from p2r_eval.models.demo import (
    TOKENIZER_TRAINING_TEXT,
    TOKENIZER_VOCAB_SIZE,
    build_demo_tokenizer,
    train_byte_level_bpe,
)

OBSERVATION = "<observation>A red ball rolls to the left.</observation>"
REASONING = "<think>The ball moves, so the answer is A.</think><answer>A</answer>"


@pytest.fixture(scope="module")
def tag_tokenizer():
    return build_demo_tokenizer()


@pytest.fixture(scope="module")
def plain_tokenizer():
    """The demo BPE without the tags as added tokens: each tag spans several tokens."""
    from transformers import Qwen2Tokenizer

    vocab, merges = train_byte_level_bpe(TOKENIZER_TRAINING_TEXT, TOKENIZER_VOCAB_SIZE)
    return Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None)


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_single_token_tags_split_exactly_after_the_closing_tag(tag_tokenizer):
    observation, reasoning = ids_of(tag_tokenizer, OBSERVATION), ids_of(tag_tokenizer, REASONING)
    end_of_turn = tag_tokenizer.convert_tokens_to_ids("<|im_end|>")
    completion = observation + reasoning + [end_of_turn]
    split = split_completion(completion, TokenPieces(tag_tokenizer))
    assert split.perception_tokens == len(observation)
    assert split.reasoning_tokens == len(reasoning) + 1
    assert tag_tokenizer.decode(completion[: split.perception_tokens]) == OBSERVATION


@pytest.mark.parametrize("text", [
    OBSERVATION + REASONING,
    OBSERVATION + "\n" + REASONING,
    "Sure. " + OBSERVATION + " " + REASONING,
])
def test_multi_token_tags_end_perception_at_the_token_completing_the_tag(plain_tokenizer, text):
    completion = ids_of(plain_tokenizer, text)
    assert "<observation>" not in plain_tokenizer.convert_ids_to_tokens(completion)
    split = split_completion(completion, TokenPieces(plain_tokenizer))
    tag_end = text.index("</observation>") + len("</observation>")
    perception = plain_tokenizer.decode(completion[: split.perception_tokens])
    one_less = plain_tokenizer.decode(completion[: split.perception_tokens - 1])
    assert text.startswith(perception)
    assert len(one_less) < tag_end <= len(perception)  # the token that completes the tag


@pytest.mark.parametrize(("text", "end"), [
    ("<observation>a ball<think>A</think><answer>A</answer>",
     len("<observation>a ball")),  # never closed: ends where reasoning starts
    ("<observation>a ball rolls", len("<observation>a ball rolls")),  # cut off: all perception
    (REASONING, 0),  # no observation: no perception tokens
    ("just text", 0),
    ("", 0),
])
def test_perception_end_without_a_closed_observation(text, end):
    assert perception_end(text) == end


def test_unclosed_observation_on_token_ids(tag_tokenizer):
    opening = ids_of(tag_tokenizer, "<observation>a ball")
    rest = ids_of(tag_tokenizer, "<think>A</think><answer>A</answer>")
    split = split_completion(opening + rest, TokenPieces(tag_tokenizer))
    assert split.perception_tokens == len(opening)


def test_completion_without_observation_is_all_reasoning(tag_tokenizer):
    completion = ids_of(tag_tokenizer, REASONING)
    split = split_completion(completion, TokenPieces(tag_tokenizer))
    assert (split.perception_tokens, split.reasoning_tokens) == (0, len(completion))


def test_perception_mask_lines_up_with_the_observation_tokens(tag_tokenizer):
    texts = [OBSERVATION + REASONING, REASONING, "<observation>x</observation><answer>B</answer>"]
    completions = [ids_of(tag_tokenizer, t) for t in texts]
    pieces = TokenPieces(tag_tokenizer)
    splits = [split_completion(c, pieces) for c in completions]
    width = max(map(len, completions)) + 2  # right padding
    mask = perception_mask(splits, width)
    assert mask.shape == (3, width)
    for row, completion in zip(mask, completions, strict=True):
        kept = [token for token, on in zip(completion, row.tolist(), strict=False) if on]
        observation = tag_tokenizer.decode(kept)
        text = tag_tokenizer.decode(completion)
        assert observation == (text[: text.index("</observation>") + 14]
                               if "</observation>" in text else "")
    assert mask.dtype == torch.bool


def test_per_token_advantages_land_on_the_observation_tokens(tag_tokenizer):
    from p2r_train.advantages import process_advantages

    texts = [OBSERVATION + REASONING, "<observation>x</observation><answer>B</answer>",
             REASONING, "Well. " + OBSERVATION + REASONING]
    completions = [ids_of(tag_tokenizer, t) for t in texts]
    pieces = TokenPieces(tag_tokenizer)
    mask = perception_mask([split_completion(c, pieces) for c in completions], 40)
    perception, reasoning = torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 5.0, 3.0])
    advantages = process_advantages(perception, reasoning, mask, 2)
    for text, completion, row in zip(texts, completions, advantages, strict=True):
        perception_value = row[0].item() if text.startswith(("<obs", "Well")) else None
        marked = [t for t, a in zip(completion, row.tolist(), strict=False)
                  if perception_value is not None and a == perception_value]
        expected = text[: text.index("</observation>") + 14] if perception_value else ""
        assert tag_tokenizer.decode(marked) == expected
