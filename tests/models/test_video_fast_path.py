"""Qwen2-VL videos through the fast path are the processor's own floats, bit for bit."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from p2r_eval.core.request import Request
from p2r_eval.models.base import DecodingSettings
from p2r_eval.models.hf import HFBackend, video_metadata
from p2r_eval.models.video_fast_path import VideoFastPath


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> HFBackend:
    return HFBackend(model_dir, decoding=DecodingSettings(max_new_tokens=1), max_pixels=80_000)


def video_request(item_id: str, frames: int, height: int, width: int, seed: int) -> Request:
    pixels = np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3),
                                                  dtype=np.uint8)
    return Request("t", item_id, "What happens?", frames=pixels, fps=2.0)


def processor_own(processor: Any, requests: list[Request]) -> Any:
    """The processor's own call, normalising inside it."""
    texts = [processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": r.prompt}]}],
        add_generation_prompt=True, tokenize=False) for r in requests]
    return processor(text=texts, videos=[r.frames for r in requests],
                     video_metadata=[video_metadata(r) for r in requests], do_sample_frames=False,
                     padding=True, padding_side="left", return_tensors="pt")


def test_the_demo_models_processor_has_the_fast_path(backend: HFBackend) -> None:
    assert backend.video_fast_path is not None


@pytest.mark.parametrize("shapes", [
    [(31, 120, 212)],                      # an odd count: the processor repeats the last frame
    [(8, 480, 854), (5, 97, 301)],         # two sizes in one batch, one left unresized
])
def test_the_fast_path_gives_the_processors_own_inputs(
    backend: HFBackend, shapes: list[tuple[int, int, int]]
) -> None:
    requests = [video_request(f"v{n}", *shape, seed=n) for n, shape in enumerate(shapes)]
    ours = backend.processor_outputs(requests)
    theirs = processor_own(backend.processor, requests)
    assert ours["pixel_values_videos"].dtype == torch.float32
    assert torch.equal(ours["pixel_values_videos"], theirs["pixel_values_videos"])
    assert torch.equal(ours["video_grid_thw"], theirs["video_grid_thw"])
    assert torch.equal(ours["input_ids"], theirs["input_ids"])


def test_frames_are_viewed_and_read_only_frames_copied(backend: HFBackend) -> None:
    frames = video_request("v", 4, 64, 96, seed=5).frames
    assert frames is not None
    view = VideoFastPath.frames(frames)
    assert view.shape == (4, 3, 64, 96) and view.data_ptr() == frames.ctypes.data
    frames.flags.writeable = False  # a tensor over these could be written through
    copied = VideoFastPath.frames(frames)
    assert copied.data_ptr() != frames.ctypes.data and torch.equal(copied, view)


def test_images_beside_a_video_keep_the_processors_normalisation(backend: HFBackend) -> None:
    image = np.random.default_rng(7).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    request = video_request("v", 4, 64, 96, seed=3)
    both = Request("t", "both", "Compare.", frames=request.frames, fps=2.0, image=image)
    ours = backend.processor_outputs([both])
    alone = backend.processor.image_processor(images=[image], return_tensors="pt")
    assert torch.equal(ours["pixel_values"], alone["pixel_values"])


def test_other_processors_have_no_fast_path(backend: HFBackend) -> None:
    unnormalised = copy.copy(backend.processor)
    unnormalised.video_processor = copy.copy(backend.processor.video_processor)
    unnormalised.video_processor.do_normalize = False
    assert VideoFastPath.of(unnormalised) is None

    subclass = type("CustomVideoProcessor", (type(backend.processor.video_processor),), {})
    renamed = copy.copy(backend.processor)
    renamed.video_processor = subclass.from_dict(backend.processor.video_processor.to_dict())
    assert VideoFastPath.of(renamed) is None
