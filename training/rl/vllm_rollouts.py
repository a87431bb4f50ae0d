"""PA-GRPO rollouts sampled by vLLM (TRL's ``colocate`` mode), each with its prompt's video.

TRL 1.16's vLLM path gives vLLM token ids and images only, so a video prompt would be
sampled blind. Here TRL still creates and owns the engine (``use_vllm=True``,
``vllm_mode="colocate"``: its ``VLLMGeneration`` builds the in-process ``LLM`` and copies the
policy's weights into it at each new step, under DeepSpeed, FSDP or PEFT as TRL supports);
PA-GRPO replaces only the sampling call (:class:`VideoRollouts`):

- the prompts are evaluation's vLLM prompts (:func:`p2r_eval.models.vllm_backend.vllm_prompt`):
  the chat rendered by the processor and the frames the dataloader already sampled, handed
  over unchanged with their rate, so vLLM samples from the frames the training forwards see;
- the training processor's pixel setting goes with every prompt, so vLLM's processor cuts
  the frames into the same patch grid as the training forwards;
- the rows of one prompt (a GRPO group) are one vLLM request with ``n`` samples: its video is
  processed once;
- vision placeholder ids get a large negative logit bias (a sampled ``<|video_pad|>`` breaks
  the next training forward) and sampling stops at the trainer's end ids;
- the sampled tokens' log-probabilities come back for TRL's importance-sampling correction
  (TRL asks vLLM for them after logit processing, so they exclude the suppressed
  placeholders' probability: nil for a trained model, about 1% for the random demo model).

Not supported, and refused by :func:`check_rollout_engine` before anything loads: server mode
(TRL's server protocol carries images as pre-processed features and has no route for a
prompt's frames; a video URL would let the server sample other frames), vLLM tensor
parallelism inside the training job, and vLLM sleep mode.

vllm is not installable on the machines this project is tested on: the tests run everything
up to ``LLM.generate`` against a stand-in engine, inside TRL's real engine management.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from p2r_eval.core.request import Request
from p2r_eval.models.vllm_backend import import_vllm, vllm_prompt

# Added to the logits of the token ids a rollout must never sample: with logits of order ten,
# a token biased by -100 keeps a probability below e^-80 at temperature 1.
SUPPRESSING_LOGIT_BIAS = -100.0


class RolloutError(RuntimeError):
    """vLLM refused a batch of rollout prompts (a prompt longer than its context window, a
    medium it cannot take); the message names the batch's items."""


def check_rollout_engine(args: Any) -> None:
    """Refuse the rollout engines PA-GRPO cannot give videos to, with what to use instead;
    check that vllm is importable when it is asked for (``args`` is a ``GRPOConfig``)."""
    if args.use_transformers_continuous_batching:
        raise ValueError("PAGRPOTrainer: continuous-batching rollouts do not pass videos; "
                         "use the transformers rollouts (the default) or vLLM's colocate mode")
    if not args.use_vllm:
        return
    if args.vllm_mode != "colocate":
        raise ValueError(
            f"PAGRPOTrainer: vllm_mode={args.vllm_mode!r} is not supported: TRL's vLLM server "
            "protocol has no route for a prompt's video frames; use vllm_mode='colocate'")
    if args.vllm_tensor_parallel_size != 1:
        raise ValueError("PAGRPOTrainer: vLLM tensor parallelism is not supported for video "
                         "rollouts; use vllm_tensor_parallel_size=1 (one engine per GPU)")
    if args.vllm_enable_sleep_mode:
        raise ValueError("PAGRPOTrainer: vLLM sleep mode is not supported for video rollouts; "
                         "lower vllm_gpu_memory_utilization instead")
    import_vllm()


def pixel_settings(processor: Any, request: Request) -> dict[str, Any]:
    """The processor-call argument that gives vLLM's processor the training processor's pixel
    bounds for this request's medium (``size``: shortest and longest edge, in pixels)."""
    sub = processor.video_processor if request.frames is not None else processor.image_processor
    size = dict(sub.size)
    return {"size": {"shortest_edge": size["shortest_edge"], "longest_edge": size["longest_edge"]}}


def rollout_prompt(processor: Any, request: Request) -> dict[str, Any]:
    """Evaluation's vLLM prompt of ``request``, with the training processor's pixel bounds."""
    prompt = vllm_prompt(processor, request)
    prompt["mm_processor_kwargs"] = {
        **prompt.get("mm_processor_kwargs", {}), **pixel_settings(processor, request)
    }
    return prompt


def prompt_groups(requests: Sequence[Request]) -> list[tuple[Request, int]]:
    """Runs of consecutive rows that share one request object, as (request, rows)."""
    groups: list[tuple[Request, int]] = []
    for request in requests:
        if groups and groups[-1][0] is request:
            groups[-1] = (request, groups[-1][1] + 1)
        else:
            groups.append((request, 1))
    return groups


@dataclass(frozen=True)
class RolloutSampling:
    """The trainer's sampling settings, as vLLM's ``SamplingParams`` arguments."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repetition_penalty: float
    max_tokens: int
    end_ids: frozenset[int]
    suppressed_ids: frozenset[int]
    extra: dict[str, Any] = field(default_factory=dict)

    def params(self, samples: int) -> dict[str, Any]:
        """Arguments for ``samples`` completions of one prompt; ``extra`` (the trainer's
        ``generation_kwargs``) overrides the rest, as in TRL."""
        return {
            "n": samples,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repetition_penalty": self.repetition_penalty,
            "max_tokens": self.max_tokens,
            "stop_token_ids": sorted(self.end_ids),
            "logit_bias": {token: SUPPRESSING_LOGIT_BIAS for token in sorted(self.suppressed_ids)},
            "logprobs": 0,
            **self.extra,
        }


def sampled_tokens(outputs: Sequence[Any]) -> tuple[list[list[int]], list[list[float]]]:
    """Each completion's token ids and the log-probability of each sampled token, in the
    order of the requests and, within a request, of its samples."""
    completion_ids: list[list[int]] = []
    logprobs: list[list[float]] = []
    for output in outputs:
        for completion in output.outputs:
            ids = list(completion.token_ids)
            completion_ids.append(ids)
            logprobs.append([float(position[token].logprob)
                             for token, position in zip(ids, completion.logprobs, strict=True)])
    return completion_ids, logprobs


class VideoRollouts:
    """Samples the completions of a generation batch with an in-process vLLM engine.

    ``llm`` is the engine TRL built; ``processor`` the training processor (its chat template
    and pixel bounds).
    """

    def __init__(self, llm: Any, processor: Any, sampling: RolloutSampling) -> None:
        self.llm = llm
        self.processor = processor
        self.sampling = sampling
        self._sampling_params = import_vllm().SamplingParams

    def generate(self, requests: Sequence[Request]) -> tuple[list[list[int]], list[list[float]]]:
        """One completion per row of ``requests`` (rows of a group share their request)."""
        groups = prompt_groups(requests)
        prompts = [rollout_prompt(self.processor, request) for request, _ in groups]
        params = [self._sampling_params(**self.sampling.params(rows)) for _, rows in groups]
        try:
            outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        except ValueError as error:
            items = ", ".join(f"{request.task}/{request.item_id}" for request, _ in groups)
            raise RolloutError(f"vLLM refused the rollouts of {items}: {error}") from error
        return sampled_tokens(outputs)
