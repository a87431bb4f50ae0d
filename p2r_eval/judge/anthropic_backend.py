"""The Anthropic Messages API as a judge backend (the official ``anthropic`` SDK).

The API key comes from the caller (``make_judge`` reads ``ANTHROPIC_API_KEY``); it lives only
in the SDK client, is redacted from every error message, and is never stored. SDK retries
are off (``max_retries=0``): the judge's own policy retries, counts and logs.

Sampling: the judge asks for temperature 0 where the model accepts it. Anthropic removed the
sampling parameters from its newer models (Opus 4.7 and later, the 5-series families), which
reject ``temperature`` with a 400; for those the parameter is left out, and repeatability
rests on the cache. ``describe()`` records which case applies.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic

from p2r_eval.core.retry import is_retryable_status, retry_after_s
from p2r_eval.judge.base import Completion, JudgeConfigError, JudgeError, TransientJudgeError
from p2r_eval.judge.prompts import JudgePrompt
from p2r_eval.judge.url_secrets import public_url, redact_logs, url_secrets

DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-5-5"
DEFAULT_TIMEOUT_S = 120.0
# Models that reject sampling parameters (see the module docstring).
_NO_SAMPLING_PARAMS = re.compile(
    r"^claude-(opus-4-[7-9]|(opus|sonnet|haiku)-([5-9]|\d\d)\b|fable|mythos)"
)


def accepts_temperature(model: str) -> bool:
    return _NO_SAMPLING_PARAMS.match(model) is None


def message_params(model: str, prompt: JudgePrompt, max_tokens: int) -> dict[str, Any]:
    """The Messages API parameters of one judge prompt (shared by live calls and batches)."""
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "system": prompt.system,
        "messages": [{"role": "user", "content": prompt.user}],
    }
    if accepts_temperature(model):
        params["temperature"] = 0.0
    return params


def message_text(message: Any) -> str:
    """The text blocks of a Messages API reply, joined."""
    return "".join(block.text for block in message.content if block.type == "text")


class AnthropicBackend:
    kind = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.model = model
        self._secrets = [secret for secret in (api_key, *url_secrets(base_url)) if secret]
        redact_logs(url_secrets(base_url))
        self.client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s
        )

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.kind,
            "model": self.model,
            "temperature": 0.0 if accepts_temperature(self.model) else None,
            "base_url": self.public_base_url,
        }

    def check(self) -> None:
        """Reach the API and prove the key works (lists one model; costs no tokens)."""
        try:
            self.client.models.list(limit=1)
        except anthropic.AuthenticationError as error:
            raise JudgeConfigError(
                f"the Anthropic API rejected ANTHROPIC_API_KEY: {self.redact(str(error))}"
            ) from None
        except anthropic.APIConnectionError as error:
            raise JudgeConfigError(
                f"cannot reach the Anthropic API at {self.public_base_url}: "
                f"{self.redact(str(error))}"
            ) from None

    def complete(self, prompt: JudgePrompt, max_tokens: int) -> Completion:
        params = message_params(self.model, prompt, max_tokens)
        temperature = params.pop("temperature", None)
        extra_body = {"temperature": temperature} if temperature is not None else None
        try:
            message = self.client.messages.create(**params, extra_body=extra_body)
        except Exception as error:  # classified just below
            raise self.classify(error) from None
        return Completion(
            text=message_text(message),
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
        )

    def classify(self, error: Exception) -> JudgeError:
        """The judge error for an SDK failure: transient (retry) or permanent."""
        message = self.redact(f"{type(error).__name__}: {error}")
        if isinstance(error, anthropic.APIStatusError):
            if is_retryable_status(error.status_code):
                return TransientJudgeError(message, retry_after=retry_after_s(error.response))
            return JudgeError(message)
        if isinstance(error, anthropic.APIConnectionError | json.JSONDecodeError):
            return TransientJudgeError(message)
        return JudgeError(message)

    @property
    def public_base_url(self) -> str:
        """The endpoint as results and messages show it: without a key it may carry."""
        return public_url(str(self.client.base_url))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text
