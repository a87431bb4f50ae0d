"""The judge: one question (is this observation sufficient?) and a grading mode.

A :class:`Judge` turns queries into prompts, looks each one up in the reply cache, calls its
backend with bounded concurrency and its own retry policy for the rest, stores every reply
before returning its verdict, and keeps usage totals. It never falls back to another backend
or to a default verdict: a failure is a :class:`JudgeError` naming the item.

A grade decides a score, so a grading reply without a verdict (empty, JSON, a sentence) is a
failed call: retried like a transient error, never cached, and once the budget is spent the
item is left for a later run. A sufficiency reply without one stays a verdict of ``None``
("unknown"), which error attribution and the rewards count as such.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

from p2r_eval.core.retry import RetryPolicy, call_with_retries
from p2r_eval.judge.base import (
    Completion,
    JudgeBackend,
    JudgeError,
    RetriesExhausted,
    TransientJudgeError,
)
from p2r_eval.judge.cache import CachedReply, ReplyCache, cache_key
from p2r_eval.judge.prompts import JudgePrompt, grade_prompt, normalize_text, sufficiency_prompt
from p2r_eval.judge.usage import Usage, UsageCounter
from p2r_eval.judge.verdicts import GradeQuery, SufficiencyQuery, Verdict, parse_verdict_reply

DEFAULT_MAX_TOKENS = 400
GRADE_MODE = "grade"


class NoVerdictReply(TransientJudgeError):
    """A grading reply that holds no verdict: retried, never cached."""


def verdict_required(mode: str, raw: str) -> bool:
    """True when ``raw`` cannot stand as a reply in ``mode``: a grade without a verdict."""
    return mode == GRADE_MODE and parse_verdict_reply(raw).sufficient is None


class JudgeItemsFailed(JudgeError):
    """Some items of a batch got no verdict; ``failures`` maps each item's label to why.
    The verdicts of the other items are already in the cache."""

    def __init__(self, failures: dict[str, str], total: int) -> None:
        shown = "; ".join(f"{label}: {why}" for label, why in list(failures.items())[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} of {total} judge requests failed: {shown}{more}")
        self.failures = failures


@dataclass(frozen=True)
class JudgeRequest:
    """A prompt ready to send: its cache key and the label that names it in errors."""

    label: str
    prompt: JudgePrompt
    key: str


class Judge:
    """Judges observations (and grades answers) with one backend.

    ``cache`` may be ``None`` (every request then calls the backend). ``concurrency`` bounds
    the requests in flight in the ``*_many`` methods.
    """

    def __init__(
        self,
        backend: JudgeBackend,
        *,
        cache: ReplyCache | None = None,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        seed: int = 0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.backend = backend
        self.cache = cache
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.max_tokens = max_tokens
        self.rng = random.Random(seed)
        self._usage = UsageCounter(backend.model)

    @property
    def model(self) -> str:
        return self.backend.model

    # -- public questions -------------------------------------------------------------
    def sufficiency(
        self,
        question: str,
        options: Sequence[str],
        answer: str,
        observation: str,
        *,
        item_id: str = "",
    ) -> Verdict:
        """Is ``observation`` sufficient to reach ``answer`` without the video?"""
        query = SufficiencyQuery(question, tuple(options), answer, observation, item_id)
        return self.resolve(self.sufficiency_request(query))

    def grade(
        self, question: str, reference: str, prediction: str, *, item_id: str = ""
    ) -> Verdict:
        """Does ``prediction`` give the same answer as ``reference``?"""
        query = GradeQuery(question, reference, prediction, item_id)
        return self.resolve(self.grade_request(query))

    def sufficiency_many(self, queries: Sequence[SufficiencyQuery]) -> list[Verdict]:
        """Verdicts in query order; see :meth:`resolve_many` for concurrency and failures."""
        return self.resolve_many([self.sufficiency_request(q) for q in queries])

    def grade_many(self, queries: Sequence[GradeQuery]) -> list[Verdict]:
        return self.resolve_many([self.grade_request(q) for q in queries])

    def usage(self) -> Usage:
        return self._usage.snapshot()

    def describe(self) -> dict[str, Any]:
        """What produced this judge's verdicts, for result files (no secrets)."""
        return {
            **self.backend.describe(),
            "max_tokens": self.max_tokens,
            "retry": {k: v for k, v in asdict(self.retry).items() if k != "sleep"},
        }

    # -- requests ---------------------------------------------------------------------
    def request_for(self, query: SufficiencyQuery | GradeQuery) -> JudgeRequest:
        if isinstance(query, SufficiencyQuery):
            return self.sufficiency_request(query)
        return self.grade_request(query)

    def sufficiency_request(self, query: SufficiencyQuery) -> JudgeRequest:
        question, answer = normalize_text(query.question), normalize_text(query.answer)
        options = tuple(normalize_text(option) for option in query.options)
        observation = normalize_text(query.observation)
        prompt = sufficiency_prompt(question, options, answer, observation)
        inputs = {"question": question, "options": options, "answer": answer}
        return self._request(prompt, {**inputs, "observation": observation}, query.id)

    def grade_request(self, query: GradeQuery) -> JudgeRequest:
        inputs = {
            "question": normalize_text(query.question),
            "reference": normalize_text(query.reference),
            "prediction": normalize_text(query.prediction),
        }
        return self._request(grade_prompt(**inputs), inputs, query.id)

    def _request(self, prompt: JudgePrompt, inputs: dict[str, Any], item_id: str) -> JudgeRequest:
        key = cache_key(
            kind=self.backend.kind,
            model=self.backend.model,
            prompt_version=prompt.version,
            mode=prompt.mode,
            inputs={**inputs, "max_tokens": self.max_tokens},
        )
        name = f"item {item_id!r}" if item_id else f"request {key[:12]}"
        return JudgeRequest(label=f"{prompt.mode} judge, {name}", prompt=prompt, key=key)

    # -- resolution -------------------------------------------------------------------
    def cached_verdict(self, request: JudgeRequest) -> Verdict | None:
        """The verdict stored for ``request``, or ``None``; counts a cache hit."""
        stored = self.cache.get(request.key) if self.cache is not None else None
        if stored is None or verdict_required(request.prompt.mode, stored.raw):
            return None
        self._usage.add(cache_hits=1)
        return verdict_from_reply(stored, cached=True, retries=0)

    def resolve(self, request: JudgeRequest) -> Verdict:
        """The cached verdict, or a fresh one (stored before it is returned)."""
        cached = self.cached_verdict(request)
        if cached is not None:
            return cached
        try:
            completion, retries = call_with_retries(
                lambda: self._answer(request.prompt),
                self.retry,
                label=request.label,
                rng=self.rng,
                on_retry=lambda error: self._usage.add(retries=1),
                exhausted=RetriesExhausted,
            )
        except RetriesExhausted:
            self._usage.add(failures=1)
            raise
        except Exception as error:  # any other error is named, then raised
            self._usage.add(failures=1)
            detail = str(error) if isinstance(error, JudgeError) else repr(error)
            raise JudgeError(f"{request.label}: {detail}") from error
        reply = CachedReply(
            raw=completion.text,
            model=self.model,
            prompt_version=request.prompt.version,
            mode=request.prompt.mode,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
        )
        if self.cache is not None:
            self.cache.put(request.key, reply)
        return verdict_from_reply(reply, cached=False, retries=retries)

    def resolve_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        """Verdicts in order, at most ``concurrency`` requests in flight; identical requests
        are asked once. Every item is attempted; if some fail, :class:`JudgeItemsFailed`
        names them after the rest have finished (and been cached)."""
        unique: dict[str, JudgeRequest] = {}
        for request in requests:
            unique.setdefault(request.key, request)
        results: dict[str, Verdict] = {}
        failures: dict[str, str] = {}

        def work(request: JudgeRequest) -> None:
            try:
                results[request.key] = self.resolve(request)
            except JudgeError as error:
                failures[request.label] = str(error)

        if unique:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(unique))) as pool:
                list(pool.map(work, unique.values()))
        if failures:
            raise JudgeItemsFailed(failures, len(unique))
        return self._in_order(requests, results)

    def _in_order(
        self, requests: Sequence[JudgeRequest], results: dict[str, Verdict]
    ) -> list[Verdict]:
        seen: set[str] = set()
        verdicts = []
        for request in requests:
            verdict = results[request.key]
            if request.key in seen:
                self._usage.add(cache_hits=1)
                verdict = replace(verdict, cached=True, retries=0)
            seen.add(request.key)
            verdicts.append(verdict)
        return verdicts

    def count_batch_reply(self, reply: CachedReply) -> None:
        """Account for a reply that came through the Message Batches API."""
        self._usage.add(
            batch_requests=1,
            batch_input_tokens=reply.input_tokens,
            batch_output_tokens=reply.output_tokens,
        )

    def _answer(self, prompt: JudgePrompt) -> Completion:
        """One call whose reply can stand (see :func:`verdict_required`)."""
        completion = self._call(prompt)
        if verdict_required(prompt.mode, completion.text):
            raise NoVerdictReply(f"the reply holds no verdict: {completion.text[:120]!r}")
        return completion

    def _call(self, prompt: JudgePrompt) -> Completion:
        self._usage.add(calls=1)
        completion = self.backend.complete(prompt, self.max_tokens)
        self._usage.add(
            input_tokens=completion.input_tokens, output_tokens=completion.output_tokens
        )
        return completion


def verdict_from_reply(reply: CachedReply, *, cached: bool, retries: int) -> Verdict:
    """The verdict a stored reply stands for (parsed afresh each time)."""
    parsed = parse_verdict_reply(reply.raw)
    return Verdict(
        sufficient=parsed.sufficient,
        rationale=parsed.rationale,
        raw=reply.raw,
        model=reply.model,
        prompt_version=reply.prompt_version,
        cached=cached,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        retries=retries,
        mode=reply.mode,
    )
