"""Retries with exponential backoff and jitter: the one retry implementation, shared by the
judge and the served-model backend (their SDK retries are off).

Owning the policy makes every retry visible: it is counted in the caller's usage summary,
logged with the item it concerns, and testable with an injected ``sleep``. Callers raise
:class:`TransientError` (or a subclass) for failures worth retrying.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 409, 429})


class TransientError(RuntimeError):
    """A failure worth retrying: rate limit, server error, timeout, broken or malformed reply.

    ``retry_after`` is the server's requested wait in seconds, when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def is_retryable_status(status_code: int) -> bool:
    """Request timeout, conflict, rate limit, and every server error (500, 529 overloaded…)."""
    return status_code in RETRYABLE_STATUS or status_code >= 500


def retry_after_s(response: Any) -> float | None:
    """The server's requested wait: ``retry-after-ms``, else ``retry-after`` in seconds."""
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) * scale, 0.0)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``max_retries`` retries after the first attempt.

    The wait before retry ``n`` (0-based) is ``min(max_delay_s, base_delay_s * 2**n)``, scaled
    by a random factor in ``[1 - jitter, 1]`` so that concurrent workers spread out. A server's
    ``retry-after`` is a floor on that wait (capped at ``max_retry_after_s``).
    """

    max_retries: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    jitter: float = 0.5
    max_retry_after_s: float = 600.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must lie in [0, 1], got {self.jitter}")

    def delay(self, retry_index: int, retry_after: float | None, rng: random.Random) -> float:
        backoff = min(self.max_delay_s, self.base_delay_s * 2**retry_index)
        backoff *= 1.0 - self.jitter * rng.random()
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.max_retry_after_s))
        return backoff


class RetriesExhausted(RuntimeError):
    """The retry budget was spent; ``retries`` says how many retries were made."""

    def __init__(self, message: str, retries: int) -> None:
        super().__init__(message)
        self.retries = retries


def call_with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    label: str,
    rng: random.Random,
    on_retry: Callable[[TransientError], None] = lambda error: None,
    exhausted: type[RetriesExhausted] = RetriesExhausted,
) -> tuple[T, int]:
    """``attempt()``'s result and the number of retries it took.

    Only :class:`TransientError` is retried; any other error propagates at once. When the
    budget is spent, ``exhausted`` (a :class:`RetriesExhausted` class, so that a caller can
    raise its own kind) names ``label`` and the last failure.
    """
    retries = 0
    while True:
        try:
            return attempt(), retries
        except TransientError as error:
            if retries >= policy.max_retries:
                raise exhausted(
                    f"{label}: gave up after {retries + 1} attempts; last error: {error}", retries
                ) from error
            wait = policy.delay(retries, error.retry_after, rng)
            log.warning("%s: %s; retry %d in %.2f s", label, error, retries + 1, wait)
            on_retry(error)
            policy.sleep(wait)
            retries += 1
