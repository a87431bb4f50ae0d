"""The small interface every judge backend implements, and the judge's errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from p2r_eval.core import retry
from p2r_eval.core.retry import TransientError
from p2r_eval.judge.prompts import JudgePrompt


class JudgeError(RuntimeError):
    """The judge could not produce a verdict (a permanent error, or the retry budget spent)."""


class JudgeConfigError(JudgeError):
    """The judge is misconfigured: raised by ``make_judge`` before any work starts."""


class TransientJudgeError(JudgeError, TransientError):
    """A judge failure worth retrying (see :class:`p2r_eval.core.retry.TransientError`)."""


class RetriesExhausted(JudgeError, retry.RetriesExhausted):
    """The judge spent its retry budget on one request; ``retries`` says how many it made."""


@dataclass(frozen=True)
class Completion:
    """A backend's reply text and the tokens it cost."""

    text: str
    input_tokens: int
    output_tokens: int


class JudgeBackend(Protocol):
    """A text model that answers a judge prompt.

    ``kind`` and ``model`` go into every cache key; ``complete`` raises
    :class:`TransientJudgeError` for failures worth retrying and :class:`JudgeError` for the
    rest. Backends do not retry: the judge owns the retry policy.
    """

    kind: str
    model: str

    def complete(self, prompt: JudgePrompt, max_tokens: int) -> Completion: ...

    def describe(self) -> dict[str, Any]:
        """What identifies this backend in results (never a secret)."""
        ...
