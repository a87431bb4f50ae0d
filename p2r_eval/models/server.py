"""The server of ``p2r-eval serve`` (its command line: :mod:`p2r_eval.cli.serve`): any
checkpoint the hf backend loads, behind OpenAI's chat-completions protocol (FastAPI + uvicorn;
the optional extra ``p2r[serve]``).

It speaks the subset of vLLM's protocol that the openai backend sends
(:mod:`p2r_eval.models.openai_backend`): a system turn and one user turn of an optional
``image_url``, an optional ``video_url`` frame list (``data:video/jpeg;base64,F1,F2,...``,
frames in any format PIL reads, so PNG frames are lossless) and the prompt text; the frames'
rate from ``media_io_kwargs.video.fps`` (or ``mm_processor_kwargs.fps``); greedy or sampled
decoding. The model sees exactly what the hf backend would give it for the same request.
The pixel cap is the request's ``mm_processor_kwargs.max_pixels`` (none: the processor's own
bounds), applied as the hf backend applies ``--max-pixels``. Anything it would have to ignore
or approximate (a remote media URL, a second image, frames to drop or resample, top-k, a
repetition penalty, n > 1, streaming) is refused with a 400 that says why, never silently
changed.

Concurrent requests are batched: a worker thread takes whatever requests are waiting (up to
``--max-batch-size``), groups them by decoding settings and pixel cap and runs each group as one
left-padded generate call (the hf backend's batching, whose outputs equal one-at-a-time
generation). ``GET /v1/models`` describes the served checkpoint, with its hashes, so that a
client can tell replicas of one checkpoint from different ones.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at run
# time, and the request type is imported inside build_app.
import asyncio
import base64
import binascii
import io
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from p2r_eval.core.request import Request
from p2r_eval.models.base import DecodingSettings

log = logging.getLogger(__name__)

SERVE_INSTALL_HINT = "pip install 'p2r[serve]'"
FRAME_LIST_PREFIX = "data:video/jpeg;base64,"
IMAGE_PREFIX = "data:image/"
MACHINE_FINGERPRINT_KEYS = ("path", "device")
"""Fingerprint entries that differ between replicas of one checkpoint."""


class InvalidRequest(ValueError):
    """A request this server cannot answer faithfully; the message says why (HTTP 400)."""


# -- request parsing ---------------------------------------------------------------------
def decode_image(data: str, where: str) -> np.ndarray:
    """One base64 image (any format PIL reads) as an RGB uint8 array."""
    try:
        raw = base64.b64decode(data, validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            return np.array(image.convert("RGB"))
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as error:
        raise InvalidRequest(f"{where}: not a base64 image ({error})") from None


def decode_frame_list(url: str) -> np.ndarray:
    """The frames of a vLLM frame-list data URL, as a (T, H, W, 3) uint8 array."""
    if not url.startswith(FRAME_LIST_PREFIX):
        raise InvalidRequest(
            f"video_url must be a frame list '{FRAME_LIST_PREFIX}F1,F2,...' (this server reads "
            f"no remote or encoded video), got {url[:40]!r}")
    frames = [decode_image(part, f"video frame {index}")
              for index, part in enumerate(url[len(FRAME_LIST_PREFIX):].split(","))]
    if len({frame.shape for frame in frames}) != 1:
        raise InvalidRequest("video frames differ in size")
    return np.stack(frames)


def decode_image_url(url: str) -> np.ndarray:
    if not url.startswith(IMAGE_PREFIX) or ";base64," not in url:
        raise InvalidRequest(f"image_url must be a base64 data URL (this server reads no "
                             f"remote image), got {url[:40]!r}")
    return decode_image(url.split(";base64,", 1)[1], "image")


def text_of(content: Any, role: str) -> str:
    """A turn's text: a string, or text parts only."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" for part in content
    ):
        return "".join(str(part.get("text", "")) for part in content)
    raise InvalidRequest(f"the {role} turn must be text")


@dataclass
class UserTurn:
    prompt: str
    image: np.ndarray | None = None
    frames: np.ndarray | None = None


def parse_user_turn(content: Any) -> UserTurn:
    """An optional image, an optional video, then one text part: the hf backend's chat."""
    if isinstance(content, str):
        return UserTurn(prompt=content)
    if not isinstance(content, list) or not content:
        raise InvalidRequest("the user turn must be a string or a list of content parts")
    *media, last = content
    if not isinstance(last, dict) or last.get("type") != "text":
        raise InvalidRequest("the user turn must end with its one text part")
    turn = UserTurn(prompt=str(last.get("text", "")))
    kinds = [part.get("type") if isinstance(part, dict) else None for part in media]
    if kinds not in ([], ["image_url"], ["video_url"], ["image_url", "video_url"]):
        raise InvalidRequest(
            f"content parts {kinds + ['text']} not supported: send at most one image_url, then "
            "at most one video_url (frames as one frame list), then one text part")
    for part in media:
        if part["type"] == "image_url":
            turn.image = decode_image_url(str((part.get("image_url") or {}).get("url", "")))
        else:
            turn.frames = decode_frame_list(str((part.get("video_url") or {}).get("url", "")))
    return turn


def split_messages(messages: Any) -> tuple[str | None, Any]:
    """(system text or None, user content) of an optional system turn then one user turn."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    roles = [message.get("role") if isinstance(message, dict) else None for message in messages]
    if roles not in (["user"], ["system", "user"]):
        raise InvalidRequest(f"messages with roles {roles} not supported: send an optional "
                             "system turn and one user turn")
    system = text_of(messages[0].get("content"), "system") if len(messages) == 2 else None
    return system, messages[-1].get("content")


def video_fps(body: dict[str, Any]) -> float:
    """The rate the frames represent: ``media_io_kwargs.video.fps`` (vLLM's frame-list
    metadata), else ``mm_processor_kwargs.fps``."""
    media_io = (body.get("media_io_kwargs") or {}).get("video") or {}
    fps = media_io.get("fps", (body.get("mm_processor_kwargs") or {}).get("fps"))
    if not isinstance(fps, int | float) or isinstance(fps, bool) or fps <= 0:
        raise InvalidRequest("a video needs the rate of its frames: media_io_kwargs "
                             "{'video': {'fps': F}} (or mm_processor_kwargs {'fps': F})")
    return float(fps)


def requested_max_pixels(body: dict[str, Any], frames: np.ndarray | None) -> int | None:
    """The pixel cap the request asks for (None: the processor's own bounds), after refusing
    media settings this server would not honour exactly."""
    media_io = (body.get("media_io_kwargs") or {}).get("video") or {}
    num_frames = media_io.get("num_frames", -1)
    if frames is not None and num_frames not in (-1, None) and num_frames < len(frames):
        raise InvalidRequest(f"media_io_kwargs asks for {num_frames} of the {len(frames)} "
                             "frames sent; this server drops no frame (send num_frames -1)")
    processor = body.get("mm_processor_kwargs") or {}
    if processor.get("do_sample_frames"):
        raise InvalidRequest("do_sample_frames is not supported: sample frames before sending")
    unknown = sorted(set(processor) - {"fps", "do_sample_frames", "max_pixels"})
    if unknown:
        raise InvalidRequest(f"mm_processor_kwargs {unknown} not supported")
    max_pixels = processor.get("max_pixels")
    if max_pixels is not None and (not isinstance(max_pixels, int) or max_pixels < 1):
        raise InvalidRequest(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return max_pixels


# Fields that change outputs when set to anything but their neutral value.
NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "stream": (None, False),
    "top_k": (None, -1, 0),
    "repetition_penalty": (None, 1.0),
    "presence_penalty": (None, 0.0),
    "frequency_penalty": (None, 0.0),
    "logprobs": (None, False),
    "stop": (None, [], ""),
    "tools": (None, []),
    "response_format": (None,),
    "skip_special_tokens": (None, False),
}
ACCEPTED_FIELDS = frozenset({
    *NEUTRAL_VALUES, "model", "messages", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "seed", "media_io_kwargs", "mm_processor_kwargs", "user",
    "spaces_between_special_tokens",
})


def decoding_of(body: dict[str, Any], default_max_tokens: int) -> DecodingSettings:
    """The decoding a body asks for, refusing settings the hf backend does not apply."""
    unknown = sorted(set(body) - ACCEPTED_FIELDS)
    if unknown:
        raise InvalidRequest(f"fields {unknown} not supported by p2r-eval serve")
    for name, neutral in NEUTRAL_VALUES.items():
        if body.get(name) not in neutral:
            raise InvalidRequest(f"{name}={body.get(name)!r} not supported (only "
                                 f"{' or '.join(repr(v) for v in neutral if v is not None)})")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    temperature = body.get("temperature")
    temperature = 1.0 if temperature is None else float(temperature)
    top_p = body.get("top_p")
    top_p = 1.0 if top_p is None else float(top_p)
    seed = int(body.get("seed") or 0)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest(
            f"max_completion_tokens must be a positive integer, got {max_tokens!r}")
    if temperature == 0.0:
        return DecodingSettings(max_new_tokens=max_tokens, seed=seed)
    return DecodingSettings(max_new_tokens=max_tokens, do_sample=True, temperature=temperature,
                            top_p=top_p, seed=seed)


@dataclass(frozen=True)
class Settings:
    """What a request's outputs depend on besides its inputs: requests that share it can
    share a generate call."""

    decoding: DecodingSettings
    max_pixels: int | None


def parse_chat_request(
    body: Any, served_name: str, default_max_tokens: int
) -> tuple[Request, Settings]:
    """The hf request a chat-completions body stands for, and its settings."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    if body.get("model") not in (None, served_name):
        raise InvalidRequest(f"this server serves {served_name!r}, not {body.get('model')!r}")
    decoding = decoding_of(body, default_max_tokens)
    system, content = split_messages(body.get("messages"))
    turn = parse_user_turn(content)
    max_pixels = requested_max_pixels(body, turn.frames)
    fps = video_fps(body) if turn.frames is not None else None
    request = Request(task="served", item_id=uuid.uuid4().hex, prompt=turn.prompt,
                      frames=turn.frames, fps=fps, image=turn.image, system=system)
    return request, Settings(decoding, max_pixels)


# -- batching ------------------------------------------------------------------------------
@dataclass
class Pending:
    request: Request
    settings: Settings
    future: Future


class Batcher:
    """One worker thread running the model on whatever requests are waiting (see the module
    docs). A failing batch is retried one request at a time, so one bad request fails alone."""

    def __init__(self, backend: Any, max_batch_size: int) -> None:
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.waiting: queue.Queue[Pending] = queue.Queue()
        self.by_max_pixels: dict[int | None, Any] = {}
        threading.Thread(target=self._run, name="p2r-serve-batcher", daemon=True).start()

    def submit(self, request: Request, settings: Settings) -> Future:
        future: Future = Future()
        self.waiting.put(Pending(request, settings, future))
        return future

    def _next_batch(self) -> list[Pending]:
        batch = [self.waiting.get()]
        while len(batch) < self.max_batch_size:
            try:
                batch.append(self.waiting.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            groups: dict[Settings, list[Pending]] = {}
            for pending in batch:
                groups.setdefault(pending.settings, []).append(pending)
            for settings, group in groups.items():
                self._generate(settings, group)

    def _backend_for(self, settings: Settings) -> Any:
        if settings.max_pixels not in self.by_max_pixels:
            self.by_max_pixels[settings.max_pixels] = self.backend.with_max_pixels(
                settings.max_pixels)
        return self.by_max_pixels[settings.max_pixels].with_decoding(settings.decoding)

    def _generate(self, settings: Settings, group: list[Pending]) -> None:
        try:
            generations = self._backend_for(settings).generate_counted(
                [pending.request for pending in group])
        except Exception as error:  # reported to the requests that caused it
            if len(group) > 1:
                for pending in group:
                    self._generate(settings, [pending])
                return
            log.exception("generation failed")
            group[0].future.set_exception(error)
            return
        for pending, generation in zip(group, generations, strict=True):
            pending.future.set_result(generation)


# -- the app -------------------------------------------------------------------------------
def served_model_entry(name: str, fingerprint: dict[str, Any], created: int) -> dict[str, Any]:
    """The ``GET /v1/models`` entry: the checkpoint's identity, without what differs between
    replicas of it (its path, the device)."""
    identity = {k: v for k, v in fingerprint.items() if k not in MACHINE_FINGERPRINT_KEYS}
    return {"id": name, "object": "model", "created": created, "owned_by": "p2r",
            "p2r_fingerprint": identity}


def completion_response(name: str, generation: Any, max_tokens: int) -> dict[str, Any]:
    finish = "stop" if generation.stopped or generation.completion_tokens < max_tokens else "length"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": generation.text}}],
        "usage": {"prompt_tokens": generation.prompt_tokens,
                  "completion_tokens": generation.completion_tokens,
                  "total_tokens": generation.prompt_tokens + generation.completion_tokens},
    }


def error_body(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind}}


def build_app(backend: Any, served_name: str, max_batch_size: int = 8) -> Any:
    """The FastAPI app serving ``backend`` (an :class:`~p2r_eval.models.hf.HFBackend`)."""
    from fastapi import FastAPI
    from fastapi import Request as HTTPRequest
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="p2r-eval serve", docs_url=None, redoc_url=None)
    batcher = Batcher(backend, max_batch_size)
    entry = served_model_entry(served_name, backend.fingerprint(), int(time.time()))
    default_max_tokens = backend.decoding().max_new_tokens

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    async def chat_completions(http_request: HTTPRequest) -> JSONResponse:
        try:
            body = await http_request.json()
            request, settings = await run_in_threadpool(
                parse_chat_request, body, served_name, default_max_tokens)
        except (InvalidRequest, ValueError) as error:
            return JSONResponse(error_body(str(error), "invalid_request_error"), status_code=400)
        try:
            generation = await asyncio.wrap_future(batcher.submit(request, settings))
        except Exception as error:  # the client gets the reason
            message = f"generation failed: {type(error).__name__}: {error}"
            return JSONResponse(error_body(message, "server_error"), status_code=500)
        return JSONResponse(completion_response(served_name, generation,
                                                settings.decoding.max_new_tokens))

    return app
