"""Qwen2.5-VL checkpoints with random weights, at the demo size or at Qwen2.5-VL-7B's size.

Usage::

    python perf/random_checkpoint.py --preset 7b --device cuda --output /scratch/qwen25vl-7b-random
    python perf/random_checkpoint.py --preset 7b --layers 1 --device cpu --output DIR
    python perf/random_checkpoint.py --preset demo --output DIR

The folder loads like any checkpoint (``p2r-eval --model DIR``, ``HFBackend(DIR)``): a
Qwen2.5-VL model with random weights (``save_pretrained``), and the demo model's processor
(:func:`p2r_eval.models.demo.build_demo_processor`: Qwen2.5-VL's chat template, special
tokens, image and video processors around the small demo tokenizer). What it is for: speed
and memory figures of a real-size model (issue 8: ``perf/bench_hf_batching.py``) without
downloading 16 GB of real weights. Its outputs are gibberish.

Presets:

- ``demo``: the demo model's sizes (``TEXT_CONFIG``, ``VISION_CONFIG`` of
  :mod:`p2r_eval.models.demo`), vocabulary = the demo tokenizer's;
- ``7b``: the published ``config.json`` of ``Qwen/Qwen2.5-VL-7B-Instruct`` (text: hidden 3584,
  MLP 18944, 28 layers, 28 heads of 128, 4 KV heads, vocabulary 152064, rope theta 1e6,
  mrope_section [16, 24, 24], RMS eps 1e-6, 128000 positions; vision: 32 blocks of width
  1280, MLP 3420, 16 heads, merger to 3584, patch 14, spatial merge 2, temporal patch 2,
  window 112, full attention in blocks 7/15/23/31, 2 temporal position ids per second), 8.29 B
  parameters. The field names are those of transformers' ``Qwen2_5_VLTextConfig`` and
  ``Qwen2_5_VLVisionConfig``; every size is given here because those classes' defaults are not
  the 7B's (text: the 72B's 8192/29568/80 layers/64 heads/8 KV heads; vision: hidden 3584 and
  ``tokens_per_second`` 4).

``--layers`` overrides the text depth only (e.g. the 7B width with 1 layer on a CPU: 2.0 B
parameters, 4 GB in bfloat16). The weights are drawn directly on ``--device`` in ``--dtype``
from a seeded generator: a 7B build needs no 30 GB float32 copy in host memory.

Token ids: the config takes the demo tokenizer's special-token ids (so the processor's video
pads are the ids the model replaces), but the 7B keeps its 152064-row embedding and output
layer, so that every forward pass costs what the real model's does. The output rows past the
tokenizer's ~500 tokens are zero: they still cost the full 152064-way projection, but their
logit 0 is below the best of the ~500 random logits, so greedy decoding only emits ids the
tokenizer knows and outputs decode to text that can be compared between runs. (An id past
the tokenizer would not crash p2r's decoding, it decodes to nothing, as the 399 unused ids of
Qwen's own vocabulary do.) With sampling, those zero logits would take most of the
probability: use this checkpoint greedy.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from p2r_eval.models.demo import (
    TEXT_CONFIG,
    VISION_CONFIG,
    build_demo_config,
    build_demo_generation_config,
    build_demo_processor,
)

if TYPE_CHECKING:
    from transformers import Qwen2_5_VLConfig, Qwen2Tokenizer

MARKER_FILE = "p2r_random_checkpoint.json"


@dataclass(frozen=True)
class Preset:
    """Model sizes: text and vision config fields; ``vocab_size`` None means the tokenizer's."""

    text: dict[str, Any]
    vision: dict[str, Any]
    vocab_size: int | None = None


QWEN2_5_VL_7B = Preset(
    text={
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": 128000,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": [16, 24, 24],
        },
    },
    vision={
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "tokens_per_second": 2,
    },
    vocab_size=152064,
)
PRESETS = {"demo": Preset(text=TEXT_CONFIG, vision=VISION_CONFIG), "7b": QWEN2_5_VL_7B}


def random_config(
    tokenizer: Qwen2Tokenizer, preset: str, layers: int | None = None
) -> Qwen2_5_VLConfig:
    """The ``Qwen2_5_VLConfig`` of ``preset`` (text depth ``layers`` if given), with the
    special-token ids of ``tokenizer`` (those the demo model's config takes)."""
    from transformers import Qwen2_5_VLConfig

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if layers is not None and layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    sizes = PRESETS[preset]
    ids = build_demo_config(tokenizer)
    text_ids = ids.get_text_config()
    text = {
        **sizes.text,
        "vocab_size": sizes.vocab_size or len(tokenizer),
        "bos_token_id": text_ids.bos_token_id,
        "eos_token_id": text_ids.eos_token_id,
        "pad_token_id": text_ids.pad_token_id,
    }
    if layers is not None:
        text["num_hidden_layers"] = layers
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(sizes.vision),
        image_token_id=ids.image_token_id,
        video_token_id=ids.video_token_id,
        vision_start_token_id=ids.vision_start_token_id,
        vision_end_token_id=ids.vision_end_token_id,
    )


def silence_unknown_ids(model: Any, known: int) -> None:
    """Zero the output rows of ids ``>= known`` (see the module docs)."""
    with torch.no_grad():
        model.get_output_embeddings().weight[known:] = 0


def make_random_checkpoint(
    folder: Path | str,
    preset: str,
    *,
    device: str,
    dtype: torch.dtype | str,
    layers: int | None = None,
    seed: int = 0,
) -> Path:
    """Build the ``preset`` Qwen2.5-VL with random weights into ``folder`` (created; must be
    empty or absent): model (config, generation config, safetensors), processor and
    :data:`MARKER_FILE`. The weights are made on ``device`` in ``dtype``."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; a random checkpoint needs an empty folder")
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    processor = build_demo_processor()
    config = random_config(processor.tokenizer, preset, layers)
    target = torch.device(device)
    cuda_devices = list(range(torch.cuda.device_count())) if target.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices), target:
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype).eval()
    silence_unknown_ids(model, len(processor.tokenizer))
    model.generation_config = build_demo_generation_config(processor.tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    marker = {"preset": preset, "layers": layers, "seed": seed,
              "dtype": str(dtype).removeprefix("torch."),
              "parameters": sum(p.numel() for p in model.parameters())}
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), required=True)
    parser.add_argument("--output", type=Path, required=True, help="an empty or new folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"),
                        default="bfloat16")
    parser.add_argument("--layers", type=int, default=None, help="text depth (default: preset's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = make_random_checkpoint(args.output, args.preset, device=args.device,
                                    dtype=args.dtype, layers=args.layers, seed=args.seed)
    marker = json.loads((folder / MARKER_FILE).read_text())
    print(f"{folder}: preset {args.preset}, {marker['parameters'] / 1e9:.2f} B parameters, "
          f"{args.dtype}")


if __name__ == "__main__":
    main()
