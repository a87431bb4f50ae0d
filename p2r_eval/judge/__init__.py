"""The LLM judge: is an observation sufficient to answer without the video? And grading.

Build one with :func:`make_judge` (backends ``anthropic``, ``openai``, ``local``), then call
``judge.sufficiency(...)`` / ``judge.grade(...)`` or their ``*_many`` batch forms; large
Anthropic jobs can go through :func:`judge_batch` (Message Batches API). See
``p2r_eval/judge/prompts.py`` for the prompt-injection design and what its tests prove.
"""

from p2r_eval.judge.base import (
    Completion,
    JudgeBackend,
    JudgeConfigError,
    JudgeError,
    TransientJudgeError,
)
from p2r_eval.judge.batches import collect_batch, judge_batch, submit_batch, wait_for_batch
from p2r_eval.judge.cache import ReplyCache, cache_key
from p2r_eval.judge.core import Judge, JudgeItemsFailed, JudgeRequest
from p2r_eval.judge.factory import BACKENDS, make_judge
from p2r_eval.judge.prompts import GRADE_PROMPT_VERSION, SUFFICIENCY_PROMPT_VERSION
from p2r_eval.judge.retry import RetriesExhausted, RetryPolicy
from p2r_eval.judge.usage import Usage
from p2r_eval.judge.verdicts import GradeQuery, SufficiencyQuery, Verdict, parse_verdict_reply

__all__ = [
    "BACKENDS",
    "GRADE_PROMPT_VERSION",
    "SUFFICIENCY_PROMPT_VERSION",
    "Completion",
    "GradeQuery",
    "Judge",
    "JudgeBackend",
    "JudgeConfigError",
    "JudgeError",
    "JudgeItemsFailed",
    "JudgeRequest",
    "ReplyCache",
    "RetriesExhausted",
    "RetryPolicy",
    "SufficiencyQuery",
    "TransientJudgeError",
    "Usage",
    "Verdict",
    "cache_key",
    "collect_batch",
    "judge_batch",
    "make_judge",
    "parse_verdict_reply",
    "submit_batch",
    "wait_for_batch",
]
