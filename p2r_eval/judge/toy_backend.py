"""The toy suite's judge: a rule, not a model (``--judge toy``).

It reads the same prompt an LLM judge reads (question, options, correct answer, observation)
and answers in the same reply format, so everything around it (cache, usage, verdict parsing,
annotate step 3, PA-GRPO's perception reward, ``--attribute-errors``) runs unchanged. The
rule: an observation is sufficient when the facts it states determine the correct answer
(:func:`p2r_eval.benchmarks.toy_suite.scenes.answer_word_from_observation`). A question that is not
one
of the toy suite's, or a grading request, is an error naming the item: this judge knows
nothing else.
"""

from __future__ import annotations

from typing import Any

from p2r_eval.benchmarks.toy_suite.scenes import answer_word_from_observation, question_kind
from p2r_eval.core.items import split_option
from p2r_eval.judge.base import Completion, JudgeError
from p2r_eval.judge.prompts import JudgePrompt, read_data_blocks

TOY_JUDGE_MODEL = "toy-rules-1"


def option_word(correct_answer: str) -> str:
    """``"B. right"`` -> ``"right"``; a numeric answer stays as it is."""
    split = split_option(correct_answer)
    return (split[1] if split else correct_answer).strip()


def toy_verdict(question: str, correct_answer: str, observation: str) -> tuple[bool, str]:
    """Whether ``observation`` determines ``correct_answer``, and why (one sentence)."""
    kind = question_kind(question)
    if kind is None:
        raise JudgeError(f"the toy judge only knows the toy suite's questions, not {question!r}")
    derived = answer_word_from_observation(kind[0], kind[1], observation)
    expected = option_word(correct_answer)
    if derived is None:
        return False, f"The observation does not state the facts a {kind[0]} question needs."
    if derived != expected:
        return False, f"The stated facts give {derived!r}, not the correct {expected!r}."
    return True, f"The stated facts give {derived!r}, the correct answer."


class ToyJudgeBackend:
    """A :class:`p2r_eval.judge.base.JudgeBackend` that applies :func:`toy_verdict`."""

    kind = "toy"
    model = TOY_JUDGE_MODEL

    def complete(self, prompt: JudgePrompt, max_tokens: int) -> Completion:
        if prompt.mode != "sufficiency":
            raise JudgeError(f"the toy judge answers sufficiency questions only, not {prompt.mode}")
        blocks = read_data_blocks(prompt.user)
        sufficient, rationale = toy_verdict(blocks["question"], blocks["correct_answer"],
                                            blocks["observation"])
        verdict = "yes" if sufficient else "no"
        return Completion(f"<verdict>{verdict}</verdict><rationale>{rationale}</rationale>", 0, 0)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.kind, "model": self.model}
