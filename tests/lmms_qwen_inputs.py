"""Run inside .venv-lmms: lmms-eval 0.7.3's own ``qwen2_5_vl`` model (its chat class, which
``--model qwen2_5_vl`` resolves to) with its default arguments, on each video given; the
processor outputs it builds are written with p2r's ``--save-inputs`` writer, one file per video
named by the video's stem.

Usage: python lmms_qwen_inputs.py MODEL_DIR OUTPUT_DIR PROMPT VIDEO...
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.models.chat.qwen2_5_vl import Qwen2_5_VL

from p2r_eval.media.saved_inputs import save_model_inputs

TASK, SPLIT = "oracle", "test"


class RecordingProcessor:
    """The model's processor, keeping the outputs of its last call."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.last: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.last = self.processor(*args, **kwargs)
        return self.last

    def __getattr__(self, name: str) -> Any:
        return getattr(self.processor, name)


def main(model_dir: str, output: str, prompt: str, videos: list[str]) -> None:
    model = Qwen2_5_VL(pretrained=model_dir, device="cpu", device_map="cpu")
    recorder = RecordingProcessor(model.processor)
    model.processor = recorder
    docs = {index: {"video": video} for index, video in enumerate(videos)}
    model.task_dict = {TASK: {SPLIT: docs}}

    def doc_to_messages(doc: dict[str, str]) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [{"type": "video", "url": doc["video"]},
                                             {"type": "text", "text": prompt}]}]

    for index, video in enumerate(videos):
        request = Instance("generate_until",
                           (prompt, doc_to_messages, {"max_new_tokens": 1}, index, TASK, SPLIT),
                           idx=0, metadata={"task": TASK, "doc_id": index, "repeats": 1})
        model.generate_until([request])
        save_model_inputs(Path(output), TASK, Path(video).stem, recorder.last)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
