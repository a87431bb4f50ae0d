"""Any OpenAI-compatible chat endpoint as a judge backend (``vllm serve``,
``transformers serve``, hosted APIs), through the official ``openai`` SDK.

The key is ``OPENAI_API_KEY`` when set (local servers usually need none; the SDK then sends a
placeholder). Greedy decoding (temperature 0); SDK retries off, the judge's policy retries.
"""

from __future__ import annotations

import json
from typing import Any

import openai

from p2r_eval.core.retry import is_retryable_status, retry_after_s
from p2r_eval.judge.base import Completion, JudgeConfigError, JudgeError, TransientJudgeError
from p2r_eval.judge.prompts import JudgePrompt
from p2r_eval.judge.url_secrets import public_url, redact_logs, url_secrets

NO_KEY_PLACEHOLDER = "EMPTY"
DEFAULT_TIMEOUT_S = 120.0


class OpenAICompatibleBackend:
    kind = "openai"

    def __init__(
        self,
        model: str | None,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._secrets = [secret for secret in (api_key, *url_secrets(base_url)) if secret]
        redact_logs(url_secrets(base_url))
        self.client = openai.OpenAI(
            api_key=api_key or NO_KEY_PLACEHOLDER,
            base_url=base_url,
            max_retries=0,
            timeout=timeout_s,
        )
        self.model = model or ""

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.kind,
            "model": self.model,
            "temperature": 0.0,
            "base_url": self.public_base_url,
        }

    def check(self) -> None:
        """Reach the endpoint (``GET /models``); with no model named, take the first served."""
        try:
            served = [model.id for model in self.client.models.list()]
        except openai.AuthenticationError as error:
            raise JudgeConfigError(
                f"the endpoint {self.public_base_url} rejected the API key: "
                f"{self.redact(str(error))}"
            ) from None
        except openai.APIError as error:
            raise JudgeConfigError(
                f"cannot reach the OpenAI-compatible endpoint {self.public_base_url}: "
                f"{self.redact(str(error))}"
            ) from None
        if not self.model:
            if not served:
                raise JudgeConfigError(
                    f"the endpoint {self.public_base_url} serves no model; name one with model="
                )
            self.model = served[0]

    def complete(self, prompt: JudgePrompt, max_tokens: int) -> Completion:
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": prompt.system},
                    {"role": "user", "content": prompt.user},
                ],
                temperature=0.0,
                max_tokens=max_tokens,
            )
        except Exception as error:  # classified just below
            raise self.classify(error) from None
        if not response.choices:
            raise TransientJudgeError(f"{self.public_base_url} returned no choices")
        usage = response.usage
        return Completion(
            text=response.choices[0].message.content or "",
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        )

    def classify(self, error: Exception) -> JudgeError:
        message = self.redact(f"{type(error).__name__}: {error}")
        if isinstance(error, openai.APIStatusError):
            if is_retryable_status(error.status_code):
                return TransientJudgeError(message, retry_after=retry_after_s(error.response))
            return JudgeError(message)
        if isinstance(error, openai.APIConnectionError | json.JSONDecodeError):
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
