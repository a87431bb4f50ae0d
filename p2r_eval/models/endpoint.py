"""How to reach a model behind an OpenAI-compatible server (``--backend openai``): the settings
and the one definition of their command-line options, shared by ``p2r-eval``, ``p2r-eval
probe`` and ``p2r-train annotate``. Light on purpose: the SDK is imported by the backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2r_eval.core.cache_root import cache_root

REQUEST_FORMATS = ("vllm", "standard")
FRAME_FORMATS = ("png", "jpeg")
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
NO_CACHE = "none"


@dataclass(frozen=True)
class EndpointSettings:
    """Where the served model is and how requests travel to it.

    ``base_urls``: one or more replicas serving the same model (requests are spread over
    them; a failed request is retried on another). ``request_format``: ``vllm`` (vLLM's
    extensions: a video as one frame-list ``video_url``, ``media_io_kwargs``,
    ``mm_processor_kwargs`` and the sampling fields that keep decoding identical; also what
    ``p2r-eval serve`` speaks) or ``standard`` (OpenAI's own schema only: video frames as
    ``image_url`` parts, for hosted API models). ``frame_format``: ``png`` (lossless) or
    ``jpeg`` (lossy, quality ``jpeg_quality``). ``cache_dir``: the response cache (None: no
    cache). The API key is read from the environment variable ``api_key_env`` and written
    nowhere.
    """

    base_urls: tuple[str, ...]
    concurrency: int = 8
    timeout_s: float = 600.0
    max_retries: int = 6
    request_format: str = "vllm"
    frame_format: str = "png"
    jpeg_quality: int = 95
    cache_dir: Path | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV

    def __post_init__(self) -> None:
        if not self.base_urls:
            raise ValueError("the openai backend needs at least one base URL (--base-url)")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.request_format not in REQUEST_FORMATS:
            raise ValueError(f"request format {self.request_format!r}: choose one of "
                             f"{', '.join(REQUEST_FORMATS)}")
        if self.frame_format not in FRAME_FORMATS:
            raise ValueError(f"frame format {self.frame_format!r}: choose one of "
                             f"{', '.join(FRAME_FORMATS)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg quality must lie in [1, 100], got {self.jpeg_quality}")


def default_response_cache() -> Path:
    return cache_root() / "responses"
