"""Large judge jobs through Anthropic's Message Batches API (half price, results within 24 h).

The flow: :func:`submit_batch` sends every query not yet in the cache (the cache key is the
request's ``custom_id``), :func:`wait_for_batch` polls until processing ends, and
:func:`collect_batch` stores each succeeded reply in the cache. A batch outlives the process
that submitted it: keep its id, and collect it later with the same queries. :func:`judge_batch`
does all three and returns the verdicts. Items that errored, expired or were canceled in the
batch are named in a :class:`JudgeItemsFailed`; nothing falls back to live calls silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from p2r_eval.core.retry import call_with_retries
from p2r_eval.judge.anthropic_backend import AnthropicBackend, message_params, message_text
from p2r_eval.judge.base import JudgeConfigError, JudgeError, RetriesExhausted
from p2r_eval.judge.cache import CachedReply, ReplyCache
from p2r_eval.judge.core import Judge, JudgeItemsFailed, JudgeRequest, verdict_from_reply
from p2r_eval.judge.verdicts import GradeQuery, SufficiencyQuery, Verdict

log = logging.getLogger(__name__)
Query = SufficiencyQuery | GradeQuery


@dataclass(frozen=True)
class BatchOutcome:
    """What a collected batch gave: replies stored by cache key, and failures by item label."""

    replies: dict[str, CachedReply] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def _batch_parts(judge: Judge) -> tuple[AnthropicBackend, ReplyCache]:
    if not isinstance(judge.backend, AnthropicBackend):
        raise JudgeConfigError(
            f"Message Batches need the anthropic backend, this judge uses {judge.backend.kind!r}"
        )
    if judge.cache is None:
        raise JudgeConfigError("Message Batches need a judge with a cache (cache_dir=...)")
    return judge.backend, judge.cache


def _requests(judge: Judge, queries: Sequence[Query]) -> dict[str, JudgeRequest]:
    unique: dict[str, JudgeRequest] = {}
    for query in queries:
        request = judge.request_for(query)
        unique.setdefault(request.key, request)
    return unique


def _with_retries(judge: Judge, label: str, call: Callable[[], Any]) -> Any:
    backend, _ = _batch_parts(judge)

    def attempt() -> Any:
        try:
            return call()
        except Exception as error:  # classified into transient/permanent
            raise backend.classify(error) from None

    result, _ = call_with_retries(attempt, judge.retry, label=label, rng=judge.rng,
                                  exhausted=RetriesExhausted)
    return result


def submit_batch(judge: Judge, queries: Sequence[Query]) -> str | None:
    """Submit the queries missing from the cache as one batch; its id, or ``None`` when every
    query is cached already (nothing to pay for)."""
    backend, cache = _batch_parts(judge)
    pending = [r for key, r in _requests(judge, queries).items() if cache.get(key) is None]
    if not pending:
        return None
    batch_requests: list[Any] = [
        {"custom_id": r.key, "params": message_params(backend.model, r.prompt, judge.max_tokens)}
        for r in pending
    ]
    batch = _with_retries(
        judge,
        f"submitting a batch of {len(pending)} judge requests",
        # the API's wire format: the SDK's request types lack temperature (see message_params)
        lambda: backend.client.messages.batches.create(requests=batch_requests),
    )
    log.info("submitted judge batch %s with %d requests", batch.id, len(pending))
    return batch.id


def wait_for_batch(
    judge: Judge,
    batch_id: str,
    *,
    poll_interval_s: float = 60.0,
    timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Poll until the batch's processing has ended; its final status. Raises
    :class:`JudgeError` after ``timeout_s`` (the batch goes on: collect it later)."""
    backend, _ = _batch_parts(judge)
    waited = 0.0
    while True:
        batch = _with_retries(
            judge,
            f"polling judge batch {batch_id}",
            lambda: backend.client.messages.batches.retrieve(batch_id),
        )
        if batch.processing_status == "ended":
            return batch
        if timeout_s is not None and waited >= timeout_s:
            raise JudgeError(
                f"judge batch {batch_id} still {batch.processing_status} after {waited:.0f} s; "
                "collect it later with collect_batch"
            )
        sleep(poll_interval_s)
        waited += poll_interval_s


def collect_batch(judge: Judge, batch_id: str, queries: Sequence[Query]) -> BatchOutcome:
    """Store every succeeded result of an ended batch in the cache; name the others."""
    backend, cache = _batch_parts(judge)
    requests = _requests(judge, queries)
    results = _with_retries(
        judge,
        f"reading the results of judge batch {batch_id}",
        lambda: list(backend.client.messages.batches.results(batch_id)),
    )
    outcome = BatchOutcome()
    for result in results:
        request = requests.get(result.custom_id)
        if request is None:
            log.warning("batch %s: result %s matches no query", batch_id, result.custom_id)
            continue
        if result.result.type != "succeeded":
            error = getattr(result.result, "error", None)
            reason = f"batch result {result.result.type}"
            outcome.failures[request.label] = f"{reason}: {error}" if error else reason
            continue
        message = result.result.message
        reply = CachedReply(
            raw=message_text(message),
            model=backend.model,
            prompt_version=request.prompt.version,
            mode=request.prompt.mode,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            source="batch",
        )
        cache.put(request.key, reply)
        outcome.replies[request.key] = reply
        judge.count_batch_reply(reply)
    return outcome


def judge_batch(
    judge: Judge,
    queries: Sequence[Query],
    *,
    poll_interval_s: float = 60.0,
    timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Verdict]:
    """Verdicts for ``queries`` in order: cached ones at no cost, the rest through one batch."""
    batch_id = submit_batch(judge, queries)
    fresh: dict[str, CachedReply] = {}
    if batch_id is not None:
        wait_for_batch(
            judge, batch_id, poll_interval_s=poll_interval_s, timeout_s=timeout_s, sleep=sleep
        )
        outcome = collect_batch(judge, batch_id, queries)
        if outcome.failures:
            raise JudgeItemsFailed(outcome.failures, len(_requests(judge, queries)))
        fresh = outcome.replies
    verdicts = []
    for query in queries:
        request = judge.request_for(query)
        if request.key in fresh:
            verdicts.append(verdict_from_reply(fresh.pop(request.key), cached=False, retries=0))
            continue
        cached = judge.cached_verdict(request)
        if cached is None:
            raise JudgeError(f"{request.label}: missing from batch {batch_id} and from the cache")
        verdicts.append(cached)
    return verdicts
