"""The options of a model served behind OpenAI-compatible endpoints
(:class:`p2r_eval.models.endpoint.EndpointSettings`), shared by ``p2r-eval``, ``p2r-eval probe``
and ``p2r-train annotate``. Light on purpose: ``p2r-eval --help`` imports it."""

from __future__ import annotations

import argparse
from pathlib import Path

from p2r_eval.models.endpoint import (
    DEFAULT_API_KEY_ENV,
    FRAME_FORMATS,
    NO_CACHE,
    REQUEST_FORMATS,
    EndpointSettings,
    default_response_cache,
)


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
