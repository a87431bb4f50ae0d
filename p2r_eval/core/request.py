"""What a model backend is asked: one generation request, built from an item and its decoded
media (:mod:`p2r_eval.media.requests`) and answered by any backend (:mod:`p2r_eval.models`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Request:
    """One generation request: a user turn made of optional visual input then ``prompt``.

    ``frames`` is a uint8 array (T, H, W, 3) of already sampled video frames; ``fps`` the
    rate those frames represent (used by Qwen2.5-VL's temporal position ids); ``image`` a
    uint8 array (H, W, 3). ``system`` is an optional system prompt. ``presized_from``: the
    (height, width) the frames were decoded at, when they were resized after decoding to the
    size the model's processor gives them (``FramePolicy.processor_size``); None otherwise.
    """

    task: str
    item_id: str
    prompt: str
    frames: np.ndarray | None = None
    fps: float | None = None
    image: np.ndarray | None = None
    system: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    presized_from: tuple[int, int] | None = None
