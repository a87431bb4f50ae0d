"""Call, token and cost accounting for a judge.

Costs are an ESTIMATE from a small table of list prices (US dollars per million tokens,
standard tier, no prompt caching), as published by Anthropic in 2026; the Message Batches
API is billed at half price. Models missing from the table (local models, OpenAI-compatible
servers, unknown Claude ids) report ``estimated_cost_usd=None``, never a made-up number.
Check the provider's pricing page before relying on a figure.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

# model id prefix -> (input, output) US dollars per million tokens.
PRICES_USD_PER_MTOK: dict[str, tuple[float, float]] = {
    "claude-sonnet-5-5": (2.0, 10.0),
    "claude-sonnet-5": (2.0, 10.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "toy-rules": (0.0, 0.0),  # the toy suite's rule judge (p2r_eval.judge.toy_backend): free
}
BATCH_PRICE_FACTOR = 0.5


def price_per_mtok(model: str) -> tuple[float, float] | None:
    """The (input, output) price of ``model``: the longest table prefix it starts with, so
    dated snapshot ids (``claude-sonnet-4-5-20250929``) find their family."""
    matches = [prefix for prefix in PRICES_USD_PER_MTOK if model.startswith(prefix)]
    return PRICES_USD_PER_MTOK[max(matches, key=len)] if matches else None


@dataclass(frozen=True)
class Usage:
    """A judge's work so far.

    ``calls``: requests sent to the backend, failed attempts included; ``retries``: attempts
    that followed a failure; ``cache_hits``: verdicts served without a call; ``failures``:
    items that got no verdict; ``batch_requests``: requests answered through Message Batches.
    Tokens are those of live calls and batch results, never of cache hits.
    """

    model: str
    calls: int
    cache_hits: int
    retries: int
    failures: int
    batch_requests: int
    input_tokens: int
    output_tokens: int
    batch_input_tokens: int
    batch_output_tokens: int
    estimated_cost_usd: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class UsageCounter:
    """Thread-safe running totals behind :class:`Usage`."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(
            (
                "calls",
                "cache_hits",
                "retries",
                "failures",
                "batch_requests",
                "input_tokens",
                "output_tokens",
                "batch_input_tokens",
                "batch_output_tokens",
            ),
            0,
        )

    def add(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self._totals[name] += amount

    def snapshot(self) -> Usage:
        with self._lock:
            totals = dict(self._totals)
        return Usage(model=self._model, estimated_cost_usd=self._cost(totals), **totals)

    def _cost(self, totals: dict[str, int]) -> float | None:
        price = price_per_mtok(self._model)
        if price is None:
            return None
        live = totals["input_tokens"] * price[0] + totals["output_tokens"] * price[1]
        batch = totals["batch_input_tokens"] * price[0] + totals["batch_output_tokens"] * price[1]
        return (live + BATCH_PRICE_FACTOR * batch) / 1e6
