"""The openai backend: a model behind an OpenAI-compatible chat-completions server (``vllm
serve``, SGLang, ``p2r-eval serve``, a hosted API), given the same inputs as the hf backend.

What it sends for one :class:`~p2r_eval.core.request.Request`:

- the chat of :func:`p2r_eval.models.hf.chat_messages` (optional system turn; a user turn of
  the image, the video, then the prompt), which the server renders with the checkpoint's own
  chat template, as the hf backend does;
- the frames :func:`p2r_eval.media.video.sample_frames` produced under the run's input policy,
  unchanged and in order. ``request_format="vllm"``: one ``video_url`` holding vLLM's
  frame-list data URL (``data:video/jpeg;base64,F1,F2,...``; vLLM selects the frame-list path
  by that media type and decodes each frame by its content, so PNG frames arrive
  losslessly), with ``media_io_kwargs`` ``{"video": {"num_frames": -1, "fps": F}}`` (keep
  every frame; their rate) and ``mm_processor_kwargs`` ``{"fps": F, "do_sample_frames":
  false, "max_pixels": P}`` (never sample again; Qwen2.5-VL's temporal ids see the real rate;
  the pixel cap the hf backend sets). ``request_format="standard"`` (hosted APIs, whose
  schema has no video): each frame as an ``image_url`` part, and nothing else;
- decoding from :class:`DecodingSettings`: greedy is ``temperature=0``; sampling sends
  temperature, top_p and seed; with ``vllm`` also ``top_k=-1`` and ``repetition_penalty=1``
  (overriding the checkpoint's generation-config defaults, as the hf backend does) and
  ``skip_special_tokens=false`` (the process tags survive, as in the hf backend).

Requests run concurrently (``concurrency`` in flight), spread round-robin over the replicas;
429, 5xx, timeouts and lost connections are retried with :mod:`p2r_eval.core.retry` (backoff with
jitter), each retry on the next replica, and a replica that failed is skipped for a while.
Replies are cached by the SHA-256 of the request body (model, chat, frames, decoding), so a
re-run costs no request. ``usage()`` counts requests, retries, cache hits, tokens, per-replica
requests and the estimated cost (API list prices, :mod:`p2r_eval.judge.usage`; None for models
without a known price). The API key comes from the environment and is written nowhere.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from p2r_eval.core.request import Request
from p2r_eval.core.retry import (
    RetriesExhausted,
    RetryPolicy,
    TransientError,
    call_with_retries,
    is_retryable_status,
    retry_after_s,
)
from p2r_eval.judge.cache import CachedReply, ReplyCache
from p2r_eval.judge.usage import UsageCounter
from p2r_eval.models.base import BackendError, DecodingSettings
from p2r_eval.models.endpoint import EndpointSettings
from p2r_eval.models.hf import check_media, video_fps

if TYPE_CHECKING:
    from p2r_eval.media.video import ProcessorFrameSize

log = logging.getLogger(__name__)

REQUEST_SCHEMA_VERSION = "p2r-openai-1"
"""Changes whenever the request body p2r builds changes (part of every cache entry)."""
CACHE_FILE_NAME = "responses.sqlite3"
FRAME_LIST_MEDIA_TYPE = "video/jpeg"
"""The media type that selects vLLM's frame-list video path (frames decoded by content)."""
NO_KEY_PLACEHOLDER = "EMPTY"
REPLICA_COOLDOWN_S = 30.0
STANDARD_FIELDS = frozenset(
    {"model", "messages", "max_completion_tokens", "temperature", "top_p", "seed", "n"}
)
"""Fields of OpenAI's own chat-completions schema; the others go in the SDK's extra body."""
VOLATILE_MODEL_FIELDS = frozenset({"created", "permission"})


def encode_frame(frame: np.ndarray, frame_format: str, jpeg_quality: int) -> str:
    """One RGB frame as base64 PNG (lossless) or JPEG."""
    buffer = io.BytesIO()
    image = Image.fromarray(frame)
    if frame_format == "png":
        image.save(buffer, format="PNG", compress_level=1)
    else:
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_media_type(frame_format: str) -> str:
    return "image/png" if frame_format == "png" else "image/jpeg"


def image_part(encoded: str, frame_format: str) -> dict[str, Any]:
    url = f"data:{image_media_type(frame_format)};base64,{encoded}"
    return {"type": "image_url", "image_url": {"url": url}}


def frame_list_part(encoded_frames: Sequence[str]) -> dict[str, Any]:
    """vLLM's frame-list video: one data URL, frames separated by commas."""
    url = f"data:{FRAME_LIST_MEDIA_TYPE};base64," + ",".join(encoded_frames)
    return {"type": "video_url", "video_url": {"url": url}}


@dataclass(frozen=True)
class Transport:
    """How inputs travel to the server; recorded in the run's settings."""

    request_format: str
    frame_format: str
    jpeg_quality: int

    def record(self) -> dict[str, Any]:
        lossy = self.frame_format == "jpeg"
        video = ("one video_url frame list (vLLM)" if self.request_format == "vllm"
                 else "one image_url per frame")
        return {
            "kind": "openai-chat-completions",
            "request_format": self.request_format,
            "video": video,
            "frame_encoding": "jpeg" if lossy else "png",
            "jpeg_quality": self.jpeg_quality if lossy else None,
            "lossy": lossy,
            "request_schema": REQUEST_SCHEMA_VERSION,
        }

    def user_content(self, request: Request) -> list[dict[str, Any]]:
        """The user turn: image, video frames, then the prompt (hf's order)."""
        content: list[dict[str, Any]] = []
        if request.image is not None:
            content.append(image_part(self.encode(request.image), self.frame_format))
        if request.frames is not None:
            frames = [self.encode(frame) for frame in request.frames]
            if self.request_format == "vllm":
                content.append(frame_list_part(frames))
            else:
                content += [image_part(frame, self.frame_format) for frame in frames]
        content.append({"type": "text", "text": request.prompt})
        return content

    def encode(self, frame: np.ndarray) -> str:
        return encode_frame(frame, self.frame_format, self.jpeg_quality)


def decoding_fields(decoding: DecodingSettings, request_format: str) -> dict[str, Any]:
    """The body's decoding fields: exactly :class:`DecodingSettings`, nothing left to the
    server's defaults where the format can say it."""
    fields: dict[str, Any] = {
        "max_completion_tokens": decoding.max_new_tokens,
        "temperature": decoding.temperature if decoding.do_sample else 0.0,
        "top_p": decoding.top_p if decoding.do_sample else 1.0,
        "seed": decoding.seed,
        "n": 1,
    }
    if request_format == "vllm":
        fields.update(top_k=-1, repetition_penalty=1.0, skip_special_tokens=False,
                      spaces_between_special_tokens=False)
    return fields


def processor_fields(request: Request, max_pixels: int | None) -> dict[str, Any]:
    """vLLM's per-request media settings: keep every frame at its rate, never resample, and
    cap pixels as the hf backend's processor does."""
    fields: dict[str, Any] = {}
    processor: dict[str, Any] = {}
    if request.frames is not None:
        fps = video_fps(request)
        fields["media_io_kwargs"] = {"video": {"num_frames": -1, "fps": fps}}
        processor.update(fps=fps, do_sample_frames=False)
    if max_pixels is not None and (request.frames is not None or request.image is not None):
        processor["max_pixels"] = max_pixels
    if processor:
        fields["mm_processor_kwargs"] = processor
    return fields


def request_body(
    request: Request,
    model: str,
    decoding: DecodingSettings,
    transport: Transport,
    max_pixels: int | None,
) -> dict[str, Any]:
    """The chat-completions body for one request (see the module docs)."""
    check_media(request)
    messages: list[dict[str, Any]] = []
    if request.system is not None:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": transport.user_content(request)})
    body = {"model": model, "messages": messages,
            **decoding_fields(decoding, transport.request_format)}
    if transport.request_format == "vllm":
        body.update(processor_fields(request, max_pixels))
    return body


def body_hash(body: dict[str, Any]) -> str:
    """The SHA-256 of a request body's canonical JSON: the response cache key."""
    encoded = json.dumps({"schema": REQUEST_SCHEMA_VERSION, "body": body}, sort_keys=True,
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass
class Replica:
    """One server; ``down_until`` is when a replica that failed is tried again."""

    base_url: str
    client: Any
    requests: int = 0
    failures: int = 0
    down_until: float = 0.0


@dataclass
class ReplicaPool:
    """Round-robin over the replicas that have not failed recently (all of them, earliest
    back first, when every one has)."""

    replicas: list[Replica]
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self) -> Replica:
        with self._lock:
            now = time.monotonic()
            count = len(self.replicas)
            for offset in range(count):
                replica = self.replicas[(self._next + offset) % count]
                if replica.down_until <= now:
                    self._next = (self._next + offset + 1) % count
                    replica.requests += 1
                    return replica
            replica = min(self.replicas, key=lambda r: r.down_until)
            replica.requests += 1
            return replica

    def failed(self, replica: Replica, cooldown_s: float) -> None:
        with self._lock:
            replica.failures += 1
            replica.down_until = time.monotonic() + cooldown_s

    def counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {r.base_url: {"requests": r.requests, "failures": r.failures}
                    for r in self.replicas}


class OpenAIBackend:
    """Generation by a model behind OpenAI-compatible servers (see the module docs)."""

    name = "openai"
    needs_media = True
    frame_size: ProcessorFrameSize | None = None  # frames go at their decoded size

    def __init__(
        self,
        model: str,
        *,
        decoding: DecodingSettings,
        endpoint: EndpointSettings,
        max_pixels: int | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        import openai

        self._openai = openai
        self.model = model
        self._decoding = decoding
        self.endpoint = endpoint
        self.max_pixels = max_pixels
        self.transport = Transport(endpoint.request_format, endpoint.frame_format,
                                   endpoint.jpeg_quality)
        self._secret = os.environ.get(endpoint.api_key_env) or ""
        self.pool = ReplicaPool([
            Replica(url, openai.OpenAI(api_key=self._secret or NO_KEY_PLACEHOLDER, base_url=url,
                                       max_retries=0, timeout=endpoint.timeout_s))
            for url in endpoint.base_urls
        ])
        self.retry = retry_policy or RetryPolicy(max_retries=endpoint.max_retries)
        self.rng = random.Random(decoding.seed)
        self.cache = (ReplyCache(endpoint.cache_dir, CACHE_FILE_NAME)
                      if endpoint.cache_dir is not None else None)
        self._usage = UsageCounter(model)
        self._workers = ThreadPoolExecutor(max_workers=endpoint.concurrency,
                                           thread_name_prefix="openai-request")
        self.served = self._served_model()

    # -- start-up check ----------------------------------------------------------------
    def _served_model(self) -> dict[str, Any]:
        """What the replicas say about the model (``GET /models``), identical on all that
        answer; :class:`BackendError` when none answers or one does not serve the model."""
        entries: dict[str, dict[str, Any]] = {}
        unreachable: list[str] = []
        for replica in self.pool.replicas:
            try:
                served = replica.client.models.list().data
            except self._openai.APIError as error:
                if isinstance(error, self._openai.AuthenticationError):
                    raise BackendError(f"{replica.base_url} rejected the API key "
                                       f"(${self.endpoint.api_key_env})") from None
                unreachable.append(f"{replica.base_url} ({self.redact(str(error))})")
                continue
            entry = next((m.to_dict() for m in served if m.id == self.model), None)
            if entry is None:
                names = ", ".join(m.id for m in served) or "none"
                raise BackendError(f"{replica.base_url} does not serve model {self.model!r} "
                                   f"(it serves: {names}); pass one of them as --model")
            entries[replica.base_url] = {k: v for k, v in entry.items()
                                         if k not in VOLATILE_MODEL_FIELDS}
        if not entries:
            raise BackendError("no server answered: " + "; ".join(unreachable))
        for url in unreachable:
            log.warning("replica %s did not answer at start; it is tried again later", url)
        distinct = {json.dumps(entry, sort_keys=True) for entry in entries.values()}
        if len(distinct) > 1:
            raise BackendError(f"the replicas serve different models under {self.model!r}: "
                               + "; ".join(f"{url}: {entry}" for url, entry in entries.items()))
        return next(iter(entries.values()))

    # -- the Backend interface ---------------------------------------------------------
    def decoding(self) -> DecodingSettings:
        return self._decoding

    def fingerprint(self) -> dict[str, Any]:
        """The served model as the servers describe it (``p2r-eval serve`` adds its
        checkpoint hashes), the request format and the frame transport; not the URLs, so a
        run may resume against other replicas of the same model."""
        return {
            "backend": self.name,
            "model": self.model,
            "served": self.served,
            "max_pixels": self.max_pixels,
            "transport": self.transport.record(),
        }

    def input_transport(self) -> dict[str, Any]:
        return self.transport.record()

    def generate(self, requests: Sequence[Request]) -> list[str]:
        """One output per request, in order, up to ``concurrency`` requests in flight. Every
        request is attempted; if some fail, the error names them after the others have
        finished (and been cached, so that a retry of the batch costs only the failed)."""
        bodies = [self.body(request) for request in requests]
        futures = [self._workers.submit(self.complete, body, f"{r.task}/{r.item_id}")
                   for body, r in zip(bodies, requests, strict=True)]
        outputs: list[str] = []
        failures: list[str] = []
        for future in futures:
            try:
                outputs.append(future.result())
            except BackendError as error:
                failures.append(str(error))
        if failures:
            raise BackendError("; ".join(failures))
        return outputs

    def body(self, request: Request) -> dict[str, Any]:
        return request_body(request, self.model, self._decoding, self.transport,
                            self.max_pixels)

    def usage(self) -> dict[str, Any]:
        totals = self._usage.snapshot().as_dict()
        usage = {key: totals[key] for key in ("model", "calls", "cache_hits", "retries",
                                              "failures", "input_tokens", "output_tokens",
                                              "estimated_cost_usd")}
        return {**usage, "replicas": self.pool.counts()}

    # -- one request -------------------------------------------------------------------
    def complete(self, body: dict[str, Any], label: str) -> str:
        """The reply text for ``body``: from the cache, else from a server (retried)."""
        key = body_hash(body)
        stored = self.cache.get(key) if self.cache is not None else None
        if stored is not None:
            self._usage.add(cache_hits=1)
            return stored.raw
        try:
            reply, _ = call_with_retries(
                lambda: self._attempt(body), self.retry, label=label, rng=self.rng,
                on_retry=lambda error: self._usage.add(retries=1),
            )
        except RetriesExhausted as error:
            self._usage.add(failures=1)
            raise BackendError(str(error)) from None
        except BackendError as error:
            self._usage.add(failures=1)
            raise BackendError(f"{label}: {error}") from None
        if self.cache is not None:
            self.cache.put(key, reply)
        return reply.raw

    def _attempt(self, body: dict[str, Any]) -> CachedReply:
        replica = self.pool.pick()
        self._usage.add(calls=1)
        standard = {k: v for k, v in body.items() if k in STANDARD_FIELDS}
        extra = {k: v for k, v in body.items() if k not in STANDARD_FIELDS}
        try:
            response = replica.client.chat.completions.create(**standard, extra_body=extra)
        except Exception as error:  # classified just below
            raise self.classify(error, replica) from None
        if not response.choices or response.choices[0].message.content is None:
            self.pool.failed(replica, REPLICA_COOLDOWN_S)
            raise TransientError(f"{replica.base_url} returned no text")
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        self._usage.add(input_tokens=prompt_tokens, output_tokens=completion_tokens)
        return CachedReply(raw=response.choices[0].message.content, model=self.model,
                           prompt_version=REQUEST_SCHEMA_VERSION, mode="generate",
                           input_tokens=prompt_tokens, output_tokens=completion_tokens)

    def classify(self, error: Exception, replica: Replica) -> Exception:
        """A retryable :class:`TransientError` (the replica then rests) or a permanent
        :class:`BackendError`, each naming the server, never the key (the caller names the
        item)."""
        openai = self._openai
        message = self.redact(f"{replica.base_url}: {type(error).__name__}: {error}")
        if isinstance(error, openai.APIStatusError):
            if error.status_code == 429:
                return TransientError(message, retry_after=retry_after_s(error.response))
            if is_retryable_status(error.status_code):
                self.pool.failed(replica, REPLICA_COOLDOWN_S)
                return TransientError(message, retry_after=retry_after_s(error.response))
            return BackendError(message)
        if isinstance(error, openai.APIConnectionError | json.JSONDecodeError):
            self.pool.failed(replica, REPLICA_COOLDOWN_S)
            return TransientError(message)
        return BackendError(message)

    def redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text
