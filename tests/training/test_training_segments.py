"""The perception/reasoning split of sampled completions, on hand-made token ids, with tags
as single tokens (the demo tokenizer) and as several tokens (the same BPE without them)."""

from __future__ import annotations

import pytest
import torch
from p2r_train.rl.advantages import group_normalize
from p2r_train.rl.segments import (
    TokenPieces,
    perception_char_spans,
    perception_mask,
    split_completion,
)

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


@pytest.mark.parametrize(("text", "spans"), [
    (OBSERVATION + REASONING, [(0, len(OBSERVATION))]),
    ("Sure. " + OBSERVATION + REASONING, [(0, len("Sure. " + OBSERVATION))]),
    ("<observation>a ball<think>A</think><answer>A</answer>",
     [(0, len("<observation>a ball"))]),  # never closed: ends where reasoning starts
    ("<observation>a ball rolls", [(0, len("<observation>a ball rolls"))]),  # cut off
    # no observation: the opening, through the first tag, is where it should have begun
    (REASONING, [(0, len("<think>"))]),
    ("Well, <answer>A</answer>", [(0, len("Well, <answer>"))]),
    ("just text", [(0, 1)]),
    ("", []),
    # observation after the think: the think block is reasoning, only its opening tag is not
    ("<think>t</think>" + OBSERVATION + "<answer>A</answer>",
     [(0, len("<think>")), (len("<think>t</think>"), len("<think>t</think>" + OBSERVATION))]),
    ("x</think><observation>o", [(0, len("x</think><observation>o"))]),  # spans touch
])
def test_perception_spans_follow_the_template(text, spans):
    assert perception_char_spans(text) == spans


def test_unclosed_observation_on_token_ids(tag_tokenizer):
    opening = ids_of(tag_tokenizer, "<observation>a ball")
    rest = ids_of(tag_tokenizer, "<think>A</think><answer>A</answer>")
    split = split_completion(opening + rest, TokenPieces(tag_tokenizer))
    assert split.perception_spans == ((0, len(opening)),)


def test_completion_without_observation_gets_perception_on_its_opening_tag(tag_tokenizer):
    completion = ids_of(tag_tokenizer, REASONING)
    split = split_completion(completion, TokenPieces(tag_tokenizer))
    assert split.perception_spans == ((0, 1),)  # <think> is one token here
    assert (split.perception_tokens, split.reasoning_tokens) == (1, len(completion) - 1)


def test_think_before_the_observation_stays_reasoning(plain_tokenizer):
    think = "<think>The ball moves left.</think>"
    text = think + OBSERVATION + "<answer>A</answer>"
    completion = ids_of(plain_tokenizer, text)
    split = split_completion(completion, TokenPieces(plain_tokenizer))
    (opening_start, opening_end), (start, end) = split.perception_spans
    assert opening_start == 0
    assert plain_tokenizer.decode(completion[:opening_end]).startswith("<think>")
    assert "moves" not in plain_tokenizer.decode(completion[:opening_end])
    observed = plain_tokenizer.decode(completion[start:end])
    assert OBSERVATION in observed and "moves" not in observed and "<answer>" not in observed


def test_perception_mask_lines_up_with_the_perception_tokens(tag_tokenizer):
    texts = [OBSERVATION + REASONING, REASONING, "<observation>x</observation><answer>B</answer>"]
    expected = [OBSERVATION, "<think>", "<observation>x</observation>"]
    completions = [ids_of(tag_tokenizer, t) for t in texts]
    pieces = TokenPieces(tag_tokenizer)
    splits = [split_completion(c, pieces) for c in completions]
    width = max(map(len, completions)) + 2  # right padding
    mask = perception_mask(splits, width)
    assert mask.shape == (3, width)
    assert mask.dtype == torch.bool
    for row, completion, perception in zip(mask, completions, expected, strict=True):
        kept = [token for token, on in zip(completion, row.tolist(), strict=False) if on]
        assert tag_tokenizer.decode(kept) == perception
        assert not row[len(completion):].any()


def test_per_token_advantages_land_on_the_perception_tokens(tag_tokenizer):
    from p2r_train.rl.advantages import process_advantages

    texts = [OBSERVATION + REASONING, "<observation>x</observation><answer>B</answer>",
             REASONING, "Well. " + OBSERVATION + REASONING]
    expected = [OBSERVATION, "<observation>x</observation>", "<think>", "Well. " + OBSERVATION]
    completions = [ids_of(tag_tokenizer, t) for t in texts]
    pieces = TokenPieces(tag_tokenizer)
    mask = perception_mask([split_completion(c, pieces) for c in completions], 40)
    perception, reasoning = torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 5.0, 3.0])
    advantages = process_advantages(perception, reasoning, mask, 2)
    perception_advantages = group_normalize(perception, 2)
    for completion, row, value, text in zip(completions, advantages, perception_advantages,
                                            expected, strict=True):
        marked = [t for t, a in zip(completion, row.tolist(), strict=False) if a == value]
        assert tag_tokenizer.decode(marked) == text


def test_not_observing_is_penalised_like_grpo_penalises_it(tag_tokenizer):
    """Perception rewards [2, 2, 0, 0], equal reasoning rewards: the two completions without
    an observation get, on their opening tokens, GRPO's advantage of the summed reward."""
    from p2r_train.rl.advantages import process_advantages

    texts = [OBSERVATION + REASONING] * 2 + [REASONING, "I think " + REASONING]
    completions = [ids_of(tag_tokenizer, t) for t in texts]
    pieces = TokenPieces(tag_tokenizer)
    mask = perception_mask([split_completion(c, pieces) for c in completions], 40)
    perception, reasoning = torch.tensor([2.0, 2.0, 0.0, 0.0]), torch.ones(4)
    advantages = process_advantages(perception, reasoning, mask, 4)
    grpo = group_normalize(perception + reasoning, 4)
    assert grpo[2].item() == pytest.approx(-0.866, abs=1e-3)
    for row in (2, 3):
        assert advantages[row].min().item() == pytest.approx(grpo[row].item())
        opening = [t for t, a in zip(completions[row], advantages[row].tolist(), strict=False)
                   if a < 0]
        assert tag_tokenizer.decode(opening) == texts[row][: texts[row].index(">") + 1]
