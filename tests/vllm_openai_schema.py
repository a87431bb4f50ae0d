"""vLLM's documented OpenAI chat-completions schema for video input, the part p2r sends, written
down here because vllm cannot be installed on this project's CPU machines (a CUDA wheel pinning
another torch).

Transcribed by hand from vLLM's sources (vllm-project/vllm, 2026):

- ``vllm/entrypoints/openai/chat_completion/protocol.py``: ``ChatCompletionRequest`` (the
  fields below, with their types; vLLM's OpenAIBaseModel accepts unknown fields with a
  warning, so ``extra="forbid"`` here is stricter than vLLM: a field vLLM does not know fails);
- ``vllm/entrypoints/chat_utils.py``: ``ChatCompletionContentPartVideoParam`` (``type:
  "video_url"``, ``video_url: {url}``) next to OpenAI's image and text parts;
- ``vllm/multimodal/media/video.py`` ``VideoMediaIO.load_base64``: media type ``video/jpeg``
  selects the frame list (comma-separated base64 frames, each opened by PIL from its bytes),
  whose metadata comes from the ``media_io_kwargs`` video keys in :data:`FRAME_LIST_KEYS`;
  ``num_frames`` (default 32) truncates the list unless it is -1.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FRAME_LIST_MEDIA_TYPE = "video/jpeg"
FRAME_LIST_KEYS = frozenset(
    {"num_frames", "fps", "frames_indices", "total_num_frames", "duration", "do_sample_frames"}
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class URL(Strict):
    url: str


class ImageURL(Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ImagePart(Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class VideoPart(Strict):
    type: Literal["video_url"]
    video_url: URL


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart | ImagePart | VideoPart]


class ChatCompletionRequest(Strict):
    messages: list[Message]
    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = 1
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    stream: bool | None = False
    media_io_kwargs: dict[str, dict[str, Any]] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    stop_token_ids: list[int] | None = Field(default_factory=list)
