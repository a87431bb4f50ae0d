"""The LLM judge: is an observation sufficient to answer without the video? And grading.

Build one with :func:`make_judge` (backends ``anthropic``, ``openai``, ``local``), then call
``judge.sufficiency(...)`` / ``judge.grade(...)`` or their ``*_many`` batch forms; large
Anthropic jobs can go through :func:`judge_batch` (Message Batches API). See
``p2r_eval/judge/prompts.py`` for the prompt-injection design and what its tests prove.

Names are imported on first use, so a light user of one submodule (the analysis needs
only ``judge.prompts``) does not pay for importing the SDKs.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BACKENDS": "p2r_eval.judge.factory",
    "Completion": "p2r_eval.judge.base",
    "GRADE_PROMPT_VERSION": "p2r_eval.judge.prompts",
    "GradeQuery": "p2r_eval.judge.verdicts",
    "Judge": "p2r_eval.judge.core",
    "JudgeBackend": "p2r_eval.judge.base",
    "JudgeConfigError": "p2r_eval.judge.base",
    "JudgeError": "p2r_eval.judge.base",
    "JudgeItemsFailed": "p2r_eval.judge.core",
    "JudgeRequest": "p2r_eval.judge.core",
    "ReplyCache": "p2r_eval.judge.cache",
    "RetriesExhausted": "p2r_eval.judge.base",
    "RetryPolicy": "p2r_eval.core.retry",
    "SUFFICIENCY_PROMPT_VERSION": "p2r_eval.judge.prompts",
    "SufficiencyQuery": "p2r_eval.judge.verdicts",
    "TransientJudgeError": "p2r_eval.judge.base",
    "Usage": "p2r_eval.judge.usage",
    "Verdict": "p2r_eval.judge.verdicts",
    "cache_key": "p2r_eval.judge.cache",
    "collect_batch": "p2r_eval.judge.batches",
    "judge_batch": "p2r_eval.judge.batches",
    "make_judge": "p2r_eval.judge.factory",
    "parse_verdict_reply": "p2r_eval.judge.verdicts",
    "submit_batch": "p2r_eval.judge.batches",
    "wait_for_batch": "p2r_eval.judge.batches",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import an exported name from its submodule the first time it is asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
