"""A stand-in for the ``vllm`` module: records the engine arguments and every generate
call, so that the vLLM backend's requests can be checked without vLLM installed."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class FakeSamplingParams:
    """vllm.SamplingParams' fields that the backend may set: any other name is a TypeError."""

    n: int = 1
    max_tokens: int | None = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop_token_ids: list[int] | None = None
    skip_special_tokens: bool = True


@dataclass
class FakeCompletion:
    token_ids: list[int]


@dataclass
class FakeRequestOutput:
    outputs: list[FakeCompletion]


@dataclass
class FakeLLM:
    """Records the engine arguments and every generate call; answers ``reply`` ids."""

    model: str
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    seed: int = 0
    limit_mm_per_prompt: dict[str, int] | None = None
    max_model_len: int | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    calls: list[tuple[list[dict[str, Any]], Any]] = field(default_factory=list)
    reply: list[int] = field(default_factory=list)

    def generate(self, prompts: list[dict[str, Any]], sampling_params: Any = None,
                 use_tqdm: bool = True) -> list[FakeRequestOutput]:
        self.calls.append((list(prompts), sampling_params))
        return [FakeRequestOutput([FakeCompletion(list(self.reply))]) for _ in prompts]


def install_fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Make ``import vllm`` return the stand-in for the rest of the test."""
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    module.__version__ = "0.0.fake"
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module
