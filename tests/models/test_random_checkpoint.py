"""perf/random_checkpoint.py: random-weight Qwen2.5-VL checkpoints that p2r loads like any other."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from p2r_eval.core.items import Item
from p2r_eval.media.requests import RequestBuilder
from p2r_eval.media.video import FramePolicy
from p2r_eval.models import DecodingSettings, load_backend
from p2r_eval.models.demo import TEXT_CONFIG, VISION_CONFIG, build_demo_processor

SCRIPT = Path(__file__).resolve().parents[2] / "perf" / "random_checkpoint.py"
# Qwen/Qwen2.5-VL-7B-Instruct's parameter count (its published safetensors index).
QWEN2_5_VL_7B_PARAMETERS = 8_292_166_656


@pytest.fixture(scope="module")
def random_checkpoint():
    spec = importlib.util.spec_from_file_location("random_checkpoint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_demo_preset_loads_and_generates(random_checkpoint, tmp_path: Path,
                                         tiny_video: Path) -> None:
    folder = random_checkpoint.make_random_checkpoint(tmp_path / "ckpt", "demo", device="cpu",
                                                      dtype=torch.float32)
    backend = load_backend(str(folder), decoding=DecodingSettings(max_new_tokens=4),
                           device="cpu")
    config = backend.model.config
    assert config.text_config.hidden_size == TEXT_CONFIG["hidden_size"]
    assert config.vision_config.depth == VISION_CONFIG["depth"]
    assert config.text_config.vocab_size == len(backend.processor.tokenizer)
    assert backend.fingerprint()["model_class"] == "Qwen2_5_VLForConditionalGeneration"
    item = Item(task="t", id="1", question="What moves?", options=("A. a", "B. b"), answer="A",
                answer_type="multiple choice", media=tiny_video)
    request = RequestBuilder("p2r", FramePolicy(num_frames=4))(item)
    [output] = backend.generate([request])
    assert isinstance(output, str)
    marker = json.loads((folder / random_checkpoint.MARKER_FILE).read_text())
    assert marker["preset"] == "demo" and marker["dtype"] == "float32"


def test_7b_preset_has_the_published_size_and_the_demo_token_ids(random_checkpoint) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    tokenizer = build_demo_processor().tokenizer
    config = random_checkpoint.random_config(tokenizer, "7b")
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    assert sum(p.numel() for p in model.parameters()) == QWEN2_5_VL_7B_PARAMETERS
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config.text_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    shallow = random_checkpoint.random_config(tokenizer, "7b", layers=2)
    assert shallow.text_config.num_hidden_layers == 2
    assert shallow.text_config.hidden_size == 3584


def test_a_used_folder_is_refused(random_checkpoint, tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        random_checkpoint.make_random_checkpoint(tmp_path, "demo", device="cpu", dtype="float32")
