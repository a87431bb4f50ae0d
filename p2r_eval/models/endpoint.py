"""How to reach a model behind an OpenAI-compatible server (``--backend openai``): the settings
and the one definition of their command-line options, shared by ``p2r-eval``, ``p2r-eval
probe`` and ``p2r-train annotate``. Light on purpose: the SDK is imported by the backend."""

from __future__ import annotations

import argparse
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


def add_endpoint_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, prefix: str = ""
) -> None:
    """The options of :class:`EndpointSettings` except the base URLs, named ``--PREFIXname``."""
    parser.add_argument(f"--{prefix}concurrency", type=int, default=8,
                        help="requests in flight at once (default 8)")
    parser.add_argument(f"--{prefix}request-timeout", type=float, default=600.0,
                        metavar="SECONDS", help="seconds per request (default 600)")
    parser.add_argument(f"--{prefix}max-retries", type=int, default=6,
                        help="retries per request on 429, 5xx, timeouts and lost connections, "
                             "with exponential backoff and jitter (default 6)")
    parser.add_argument(f"--{prefix}request-format", choices=REQUEST_FORMATS, default="vllm",
                        help="vllm (vLLM's extensions, read by vllm serve and p2r-eval serve: "
                             "video as a frame list, fps and pixel bounds to the processor; "
                             "default) or standard (OpenAI's schema only: frames as images)")
    parser.add_argument(f"--{prefix}frame-format", choices=FRAME_FORMATS, default="png",
                        help="how frames travel: png (lossless, default) or jpeg (lossy, "
                             "quality 95; recorded in the results)")
    parser.add_argument(f"--{prefix}response-cache", default=None, metavar="DIR",
                        help="folder caching replies by request content, so a re-run makes "
                             f"no request (default ~/.cache/p2r/responses; '{NO_CACHE}' for "
                             "no cache)")
    parser.add_argument(f"--{prefix}api-key-env", default=DEFAULT_API_KEY_ENV, metavar="VAR",
                        help=f"environment variable holding the API key (default "
                             f"{DEFAULT_API_KEY_ENV}; unset: no key, as local servers need)")


def endpoint_from_args(
    args: argparse.Namespace, base_urls: list[str] | None, prefix: str = ""
) -> EndpointSettings | None:
    """The settings given by :func:`add_endpoint_arguments`' options and ``base_urls`` (None
    when no URL was given: the model runs in-process)."""
    if not base_urls:
        return None
    option = prefix.replace("-", "_")
    cache = getattr(args, f"{option}response_cache")
    return EndpointSettings(
        base_urls=tuple(base_urls),
        concurrency=getattr(args, f"{option}concurrency"),
        timeout_s=getattr(args, f"{option}request_timeout"),
        max_retries=getattr(args, f"{option}max_retries"),
        request_format=getattr(args, f"{option}request_format"),
        frame_format=getattr(args, f"{option}frame_format"),
        cache_dir=None if cache == NO_CACHE else Path(cache) if cache else default_response_cache(),
        api_key_env=getattr(args, f"{option}api_key_env"),
    )
