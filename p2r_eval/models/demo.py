"""The demo model, and the tiny but real Qwen2.5-VL with random weights it was trained from.

``--model demo`` is :func:`demo_checkpoint`: the tiny Qwen2.5-VL after the toy recipe's SFT
step (``p2r-train recipe toy``), committed in ``p2r_eval/models/demo_checkpoint/`` (under
1 MB; ``bash scripts/make_demo_checkpoint.sh`` remakes it, ``p2r_demo.json`` there records
how). On the toy suite it writes well-formed observation/think/answer outputs; on the paper's
benchmarks it writes toy-style text, so its scores there stay near zero.

Everything below builds the random-weight model (:func:`ensure_demo_model`): what the tests
train and what the toy recipe starts from.

It has the real architecture, tokenizer type, chat template and processors of Qwen2.5-VL, only
very small (~0.2 M parameters, <1 MB on disk): every code path of the hf backend, the eval
pipeline and training runs on it in seconds on a CPU, without network access. Its outputs are
gibberish (the weights are random); the process tags are single tokens of its vocabulary, so
it can emit them.

The build is deterministic given the seed: the byte-level BPE tokenizer is trained on a
built-in text, and the weights are drawn from a seeded generator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from p2r_eval.core.cache_root import build_once, cache_root
from p2r_eval.core.template import TAGS

if TYPE_CHECKING:
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2Tokenizer

DEMO_CHECKPOINT = Path(__file__).resolve().parent / "demo_checkpoint"
DEMO_RECIPE_VERSION = 1
DEMO_MARKER_FILE = "p2r_demo.json"
# The six process tags, each a single token of the demo vocabulary.
TAG_TOKENS = tuple(f"<{tag}>" for tag in TAGS) + tuple(f"</{tag}>" for tag in TAGS)

# Qwen2-VL's special tokens, in the order of Qwen's own tokenizer.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The chat template of Qwen2-VL / Qwen2.5-VL: a default system turn, then each message as
# <|im_start|>role\n...<|im_end|>\n, where an image or video content part becomes its
# vision placeholder (expanded to the right number of pad tokens by the processor).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The text the demo tokenizer's BPE merges are learned from: the vocabulary of the prompts
# and answers the toolkit deals with, so that prompts tokenize into a reasonable number of
# tokens. Changing it changes the tokenizer: bump DEMO_RECIPE_VERSION.
TOKENIZER_TRAINING_TEXT = """\
You are a helpful assistant. Watch the video and answer the question.
Please think about this question as if you were a human pondering deeply.
Engage in an internal dialogue using expressions such as let me think, wait, Hmm, oh, I see,
let's break it down, etc, or other natural language thought expressions.
It's encouraged to include self-reflection or verification in the reasoning process.
Provide your detailed reasoning between the <think> and </think> tags, and then give your
final answer between the <answer> and </answer> tags.
First describe the visual evidence relevant to the question between the <observation> and
</observation> tags: only what is seen in the video, no conclusions. Then reason step by step
over that evidence, and finally give your final answer.
Please provide only the single option letter (e.g., A, B, C, D, etc.) within the tags.
Please provide the numerical value (e.g., 42 or 3.14) within the tags.
Please transcribe text from the image/video clearly and provide your text answer.
Options:
A. The person opens the door before picking up the cup.
B. The red ball rolls to the left of the table.
C. There are three chairs in the room.
D. The car turns right at the second intersection.
<observation>A man in a blue shirt walks into the kitchen, picks up a cup from the table and
puts it in the sink. Then he opens the fridge.</observation>
<think>Let me think. The question asks what happened first. The man picked up the cup before
he opened the fridge, so the answer is option A. Wait, let me check the order again. Yes.</think>
<answer>A</answer>
<answer>B</answer> <answer>C</answer> <answer>D</answer> <answer>42</answer> <answer>3.14</answer>
How many objects are on the shelf? What is the color of the car? Where is the dog sitting?
What will the woman do next? Why did the boy stop running? Which room is larger?
How far is the chair from the bed, in meters? What is the size of the table in centimeters?
The video shows a street at night with cars, people, lights, buildings and a small park.
In the first frame the camera is still; later it moves to the right and zooms in.
0 1 2 3 4 5 6 7 8 9 10 11 12 20 25 30 50 100 1000 0.5 1.5 2.0 12.5 99.9
"""

# Sizes of the tiny model. Text: hidden 64 = 4 heads of 16, whose 8 rotary frequencies are
# split 2/3/3 over Qwen2.5-VL's temporal/height/width position ids (mrope_section).
TEXT_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 1000000.0,
        "mrope_section": [2, 3, 3],
    },
}
VISION_CONFIG = {
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_heads": 2,
    "out_hidden_size": 64,
    "fullatt_block_indexes": [1],
    "window_size": 112,
    "tokens_per_second": 2,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}
# An upper bound: the built-in text yields fewer merges (pairs seen at least twice).
TOKENIZER_VOCAB_SIZE = 640


def train_byte_level_bpe(
    text: str, vocab_size: int
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a byte-level BPE trained on ``text``, with Qwen2's
    pre-tokenization (so the merges fit what :class:`Qwen2Tokenizer` will apply)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(text.splitlines(), trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return dict(model["vocab"]), [_merge_pair(merge) for merge in model["merges"]]


def _merge_pair(merge: str | list[str]) -> tuple[str, str]:
    """A BPE merge as its two parts (tokenizers writes "a b" or ["a", "b"])."""
    first, second = merge.split(" ") if isinstance(merge, str) else merge
    return first, second


def build_demo_tokenizer() -> Qwen2Tokenizer:
    """A ``Qwen2Tokenizer`` with Qwen's special tokens (same order, after the BPE vocabulary)
    and the six process tags as single added tokens. The tags are not special, so that
    ``skip_special_tokens`` never strips them from a decoded output."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab, merges = train_byte_level_bpe(TOKENIZER_TRAINING_TEXT, TOKENIZER_VOCAB_SIZE)
    # transformers annotates merges as strings and unk_token as str; it takes (a, b) pairs and None
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]
        unk_token=None,  # type: ignore[arg-type]
        model_max_length=32768,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TAG_TOKENS])
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tokenizer


def build_demo_processor() -> Qwen2_5_VLProcessor:
    """Qwen2.5-VL's processor around the demo tokenizer, with Qwen2.5-VL's pixel limits."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 16384)
    # The per-video pixel budget of the reference implementation (qwen-vl-utils).
    video_processor = Qwen2VLVideoProcessor(cap_pixels_per_frame=True)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=build_demo_tokenizer(),
        video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )


def build_demo_config(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLConfig:
    """The tiny ``Qwen2_5_VLConfig`` whose token ids are the demo tokenizer's."""
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config=text_config(tokenizer, TEXT_CONFIG),
        vision_config=dict(VISION_CONFIG),
        image_token_id=token_id(tokenizer, "<|image_pad|>"),
        video_token_id=token_id(tokenizer, "<|video_pad|>"),
        vision_start_token_id=token_id(tokenizer, "<|vision_start|>"),
        vision_end_token_id=token_id(tokenizer, "<|vision_end|>"),
    )


def text_config(tokenizer: Qwen2Tokenizer, sizes: dict[str, Any]) -> dict[str, Any]:
    """A tiny text model config: ``sizes`` with the token ids of ``tokenizer``."""
    return {
        **sizes,
        "vocab_size": len(tokenizer),
        "bos_token_id": token_id(tokenizer, "<|endoftext|>"),
        "eos_token_id": token_id(tokenizer, "<|im_end|>"),
        "pad_token_id": token_id(tokenizer, "<|endoftext|>"),
    }


def token_id(tokenizer: Qwen2Tokenizer, token: str) -> int:
    """The id of one token of ``tokenizer``'s vocabulary."""
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int):
        raise TypeError(f"{token!r} is not one token")
    return found


def build_demo_generation_config(tokenizer: Qwen2Tokenizer) -> GenerationConfig:
    """Stop at <|im_end|> or <|endoftext|>, pad with <|endoftext|>, greedy: like Qwen's."""
    from transformers import GenerationConfig

    end_of_turn = token_id(tokenizer, "<|im_end|>")
    end_of_text = token_id(tokenizer, "<|endoftext|>")
    return GenerationConfig(
        bos_token_id=end_of_text,
        eos_token_id=[end_of_turn, end_of_text],
        pad_token_id=end_of_text,
        do_sample=False,
    )


def demo_checkpoint() -> Path:
    """The folder of the demo model (``--model demo``): the toy recipe's SFT checkpoint."""
    if not (DEMO_CHECKPOINT / "model.safetensors").is_file():
        raise FileNotFoundError(f"the demo checkpoint is missing from {DEMO_CHECKPOINT}; "
                                "remake it with `bash scripts/make_demo_checkpoint.sh`")
    return DEMO_CHECKPOINT


def make_demo_model(directory: Path, *, seed: int = 0) -> Path:
    """Build the demo Qwen2.5-VL into ``directory`` (created; must be empty or absent).

    Writes the model (config, generation config, safetensors weights), the processor
    (tokenizer, chat template, image and video processors) and :data:`DEMO_MARKER_FILE`.
    The same seed gives byte-identical weights.
    """
    from transformers import Qwen2_5_VLForConditionalGeneration

    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty; the demo model needs an empty folder")
    processor = build_demo_processor()
    config = build_demo_config(processor.tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
        # transformers types to() as functools.wraps(Module.to): a model as first argument
        model = model.to(torch.float32).eval()  # type: ignore[arg-type]
    model.generation_config = build_demo_generation_config(processor.tokenizer)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    marker = {"recipe_version": DEMO_RECIPE_VERSION, "seed": seed}
    (directory / DEMO_MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
    return directory


def ensure_demo_model(cache_dir: Path | None = None) -> Path:
    """The demo model's folder in the cache, built on first use (seed 0) and reused after.

    Safe when several processes ask at once (see :func:`p2r_eval.core.cache_root.build_once`).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else cache_root()
    return build_once(cache_dir / f"demo-model-v{DEMO_RECIPE_VERSION}", DEMO_MARKER_FILE,
                      lambda folder: make_demo_model(folder, seed=0))
