"""``make_judge``: build a judge from a backend name, validating everything before any work.

No silent fallback: a missing ``ANTHROPIC_API_KEY``, an unreachable endpoint, a rejected key or
a missing model folder is a :class:`JudgeConfigError` here, before the first item is judged.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from p2r_eval.core.retry import RetryPolicy
from p2r_eval.judge.base import JudgeConfigError
from p2r_eval.judge.cache import ReplyCache
from p2r_eval.judge.core import DEFAULT_MAX_TOKENS, Judge

BACKENDS = ("anthropic", "openai", "local", "toy")
DEFAULT_TIMEOUT_S = 120.0


def make_judge(
    backend: str,
    *,
    model: str | None = None,
    base_url: str | None = None,
    cache_dir: Path | None = None,
    concurrency: int = 8,
    max_retries: int = 6,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    check_endpoint: bool = True,
    retry_policy: RetryPolicy | None = None,
    device: str = "cpu",
) -> Judge:
    """A ready judge.

    ``backend``: ``"anthropic"`` (key from ``ANTHROPIC_API_KEY``; ``model`` defaults to a
    current Claude Sonnet; ``base_url`` or ``ANTHROPIC_BASE_URL`` for a proxy), ``"openai"``
    (any OpenAI-compatible server at ``base_url`` or ``OPENAI_BASE_URL``; key from
    ``OPENAI_API_KEY`` if set; ``model`` defaults to the first model the server lists) or
    ``"local"`` (``model`` is a local folder loaded with transformers on ``device``) or
    ``"toy"`` (the toy suite's rule, :mod:`p2r_eval.judge.toy_backend`; no model, offline).
    ``cache_dir`` holds the reply cache (``None``: no cache). ``check_endpoint`` reaches the
    API once (a model listing, no tokens) to prove the endpoint and key work.
    ``retry_policy`` sets backoff delays; ``max_retries`` always wins over its count.
    """
    if concurrency < 1:
        raise JudgeConfigError(f"concurrency must be >= 1, got {concurrency}")
    if max_retries < 0:
        raise JudgeConfigError(f"max_retries must be >= 0, got {max_retries}")
    if backend == "anthropic":
        judge_backend = _anthropic(model, base_url, timeout_s, check_endpoint)
    elif backend == "openai":
        judge_backend = _openai(model, base_url, timeout_s, check_endpoint)
    elif backend == "local":
        judge_backend = _local(model, base_url, device)
    elif backend == "toy":
        judge_backend = _toy(model, base_url)
    else:
        raise JudgeConfigError(f"unknown judge backend {backend!r}; choose one of {BACKENDS}")
    return Judge(
        judge_backend,
        cache=ReplyCache(Path(cache_dir)) if cache_dir is not None else None,
        concurrency=concurrency,
        retry=replace(retry_policy or RetryPolicy(), max_retries=max_retries),
        max_tokens=max_tokens,
    )


def _anthropic(model: str | None, base_url: str | None, timeout_s: float, check: bool):
    from p2r_eval.judge.anthropic_backend import DEFAULT_ANTHROPIC_MODEL, AnthropicBackend

    api_key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if not api_key:
        raise JudgeConfigError(
            "the anthropic judge needs an API key in the ANTHROPIC_API_KEY environment "
            "variable, and it is not set (no other judge is used in its place)"
        )
    backend = AnthropicBackend(
        model or DEFAULT_ANTHROPIC_MODEL,
        api_key=api_key,
        base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
        timeout_s=timeout_s,
    )
    if check:
        backend.check()
    return backend


def _openai(model: str | None, base_url: str | None, timeout_s: float, check: bool):
    from p2r_eval.judge.openai_backend import OpenAICompatibleBackend

    base_url = base_url or os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise JudgeConfigError(
            "the openai judge needs the base URL of an OpenAI-compatible server "
            "(base_url=..., e.g. http://127.0.0.1:8000/v1 for `vllm serve`)"
        )
    backend = OpenAICompatibleBackend(
        model,
        base_url=base_url,
        api_key=os.environ.get("OPENAI_API_KEY") or None,
        timeout_s=timeout_s,
    )
    if check or not model:
        backend.check()
    return backend


def _local(model: str | None, base_url: str | None, device: str):
    from p2r_eval.judge.local_backend import LocalBackend

    if not model:
        raise JudgeConfigError("the local judge needs model=<folder of a transformers model>")
    if base_url:
        raise JudgeConfigError("the local judge loads a folder; base_url does not apply")
    return LocalBackend(Path(model).expanduser(), device=device)


def _toy(model: str | None, base_url: str | None):
    from p2r_eval.judge.toy_backend import ToyJudgeBackend

    if model or base_url:
        raise JudgeConfigError("the toy judge is a rule: it takes no model and no base_url")
    return ToyJudgeBackend()
