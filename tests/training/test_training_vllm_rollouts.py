"""PA-GRPO with vLLM rollouts (TRL's colocate mode), up to the vLLM engine.

vllm cannot be installed here. TRL's real engine management runs (its ``VLLMGeneration``
builds the engine and copies the weights into it); the engine is a stand-in that does what
vLLM does with our prompts, with transformers: it runs the checkpoint's own processor on
the prompt text, the frames and the per-request processor arguments, loads the weights it
is sent, and samples ``n`` completions per prompt, returning the sampled tokens'
log-probabilities. Checked: the prompt vLLM would see encodes to exactly the training
prompt's ids and pixels; the frames are the dataloader's; weights are synced at each step;
sampling suppresses the vision placeholders; the sampled log-probabilities equal the
training forward's (same weights, same inputs); unsupported modes are refused up front.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from judge_server import FakeJudgeServer
from p2r_train.inputs.data import rl_rows, to_dataset
from p2r_train.inputs.vision import placeholder_token_ids
from p2r_train.rl.rewards import RewardDesign
from p2r_train.rl.vllm_rollouts import (
    RolloutError,
    check_rollout_engine,
    prompt_groups,
    sampled_tokens,
)
from training_support import (
    TEST_POLICY,
    fake_server_judge,
    grpo_config,
    rl_record,
    write_clips,
    write_picture,
)

from p2r_eval.core.items import item_from_row
from p2r_eval.media.requests import RequestBuilder
from p2r_eval.models.base import BackendError

WATCHED_PARAMETER = "lm_head.weight"


@dataclass
class SamplingParams:
    """vllm.SamplingParams' fields the rollouts may set: any other name is a TypeError."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    max_tokens: int | None = 16
    stop_token_ids: list[int] | None = None
    logit_bias: dict[int, float] | None = None
    logprobs: int | None = None
    seed: int | None = None


@dataclass
class Logprob:
    logprob: float


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]]


@dataclass
class RequestOutput:
    outputs: list[Completion]


class BiasLogits:
    """vLLM's ``logit_bias``, as a transformers logits processor (on a copy: the engine
    reports log-probabilities before the bias, as vLLM's ``raw_logprobs`` mode does)."""

    def __init__(self, bias: dict[int, float]) -> None:
        self.ids = torch.tensor(sorted(bias))
        self.values = torch.tensor([bias[i] for i in sorted(bias)])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        biased = scores.clone()
        biased[:, self.ids] += self.values
        return biased


class TransformersEngine:
    """Stands in for ``vllm.LLM``: takes the engine arguments TRL passes, has
    ``load_weights`` where TRL calls it, and runs ``generate`` with the checkpoint's
    processor and model. Records what it was sent."""

    def __init__(self, model: str, **settings: Any) -> None:
        self.model, self.settings = model, settings
        self.synced: list[torch.Tensor] = []
        self.prompt_ids: list[list[int]] = []
        self.prompts: list[dict[str, Any]] = []
        self.params: list[SamplingParams] = []
        self.prefix_resets = 0
        from transformers import AutoModelForImageTextToText, AutoProcessor  # slow to import

        self.processor = AutoProcessor.from_pretrained(model)
        self.network = AutoModelForImageTextToText.from_pretrained(model).eval()
        runner = types.SimpleNamespace(model=self)
        worker = types.SimpleNamespace(model_runner=runner)
        self.llm_engine = types.SimpleNamespace(
            model_executor=types.SimpleNamespace(driver_worker=worker))

    def load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        state = self.network.state_dict()
        for name, tensor in weights:
            state[name].copy_(tensor)
            if name == WATCHED_PARAMETER:
                self.synced.append(tensor.detach().clone())

    def reset_prefix_cache(self) -> None:
        self.prefix_resets += 1

    def _inputs(self, prompt: dict[str, Any]) -> Any:
        """What vLLM's Qwen2.5-VL processing does with a prompt: the processor on the text, the
        frames and the per-request arguments (metadata without vLLM's own flag)."""
        media, settings = prompt["multi_modal_data"], prompt["mm_processor_kwargs"]
        if "image" in media:
            return self.processor(text=[prompt["prompt"]], images=[media["image"]],
                                  return_tensors="pt", **settings)
        frames, metadata = media["video"][0]
        metadata = {k: v for k, v in metadata.items() if k != "do_sample_frames"}
        return self.processor(text=[prompt["prompt"]], videos=[frames], video_metadata=[metadata],
                              return_tensors="pt", **settings)

    def generate(self, prompts: list[dict[str, Any]], sampling_params: list[SamplingParams],
                 use_tqdm: bool = True) -> list[RequestOutput]:
        results = []
        for prompt, params in zip(prompts, sampling_params, strict=True):
            self.prompts.append(prompt)
            self.params.append(params)
            inputs = self._inputs(prompt)
            self.prompt_ids.append(inputs["input_ids"][0].tolist())
            results.append(self._sample(inputs, params))
        return results

    @torch.no_grad()
    def _sample(self, inputs: Any, params: SamplingParams) -> RequestOutput:
        generated = self.network.generate(
            **inputs, do_sample=True, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k or None, max_new_tokens=params.max_tokens,
            num_return_sequences=params.n, eos_token_id=params.stop_token_ids,
            logits_processor=[BiasLogits(params.logit_bias)], output_logits=True,
            return_dict_in_generate=True)
        width = inputs["input_ids"].shape[1]
        logps = torch.stack(generated.logits, 1).div(params.temperature).log_softmax(-1)
        completions = []
        for row, sequence in enumerate(generated.sequences[:, width:].tolist()):
            ids = through_first(sequence, set(params.stop_token_ids))
            completions.append(Completion(ids, [{t: Logprob(logps[row, i, t].item())}
                                                for i, t in enumerate(ids)]))
        return RequestOutput(completions)


def through_first(ids: list[int], ends: set[int]) -> list[int]:
    for position, token in enumerate(ids):
        if token in ends:
            return ids[: position + 1]
    return ids


@pytest.fixture
def stand_in_vllm(monkeypatch):
    """vllm importable as the stand-in, and TRL's vLLM module pointed at it."""
    import trl.generation.vllm_generation as trl_vllm

    module = types.ModuleType("vllm")
    module.SamplingParams = SamplingParams
    module.LLM = TransformersEngine
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(trl_vllm, "is_vllm_available", lambda *a, **k: True)
    monkeypatch.setattr(trl_vllm, "LLM", TransformersEngine, raising=False)
    environment = dict(os.environ)
    yield module
    # TRL set RANK, WORLD_SIZE, MASTER_PORT... for vLLM's launcher: left behind, they would
    # make every later trainer of the session start a distributed process group
    os.environ.clear()
    os.environ.update(environment)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """Two video items, each on its own clip."""
    folder = tmp_path_factory.mktemp("vllm-media")
    return rl_rows([rl_record(i, name) for i, name in enumerate(write_clips(folder, 2))], folder)


@pytest.fixture(scope="module")
def image_row(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vllm-image")
    return rl_rows([rl_record(2, write_picture(folder), data_type="image")], folder)[0]


VLLM_SETTINGS = {"use_vllm": True, "vllm_mode": "colocate",
                 "vllm_importance_sampling_correction": True}


def make_trainer(model_dir, rows, output, *, design=None, judge=None, **overrides):
    from p2r_train.rl.pa_grpo import PAGRPOTrainer  # imported here, as TRL: collection stays quick
    from transformers import AutoProcessor

    return PAGRPOTrainer(
        str(model_dir), grpo_config(output, **{**VLLM_SETTINGS, **overrides}), to_dataset(rows),
        AutoProcessor.from_pretrained(model_dir), builder=RequestBuilder("p2r", TEST_POLICY),
        design=design or RewardDesign(process_agnostic=True), judge=judge)


def move_parameter_callback(model: Any) -> Any:
    """A trainer callback that moves the watched parameter at the end of each step (the demo
    model's rewards are all zero, so the optimizer alone would leave it) and records its new
    value in ``after_step`` (transformers imported here: collection stays quick)."""
    from transformers import TrainerCallback

    class MoveParameter(TrainerCallback):
        def __init__(self) -> None:
            self.after_step: list[torch.Tensor] = []

        def on_step_end(self, args, state, control, **kwargs):
            parameter = model.get_parameter(WATCHED_PARAMETER)
            with torch.no_grad():
                parameter.add_(0.01)
            self.after_step.append(parameter.detach().clone())

    return MoveParameter()


@pytest.mark.slow
def test_pa_grpo_trains_two_steps_on_vllm_rollouts_with_video(stand_in_vllm, model_dir, rows,
                                                              tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeJudgeServer() as server:
        trainer = make_trainer(model_dir, rows, tmp_path / "pa", design=RewardDesign(),
                               judge=fake_server_judge(server))
        moves = move_parameter_callback(trainer.model)
        trainer.add_callback(moves)
        initial = trainer.model.get_parameter(WATCHED_PARAMETER).detach().clone()
        trainer.train()
    engine = trainer.vllm_generation.llm
    assert trainer.state.global_step == 2
    assert "rewards/perception/mean" in trainer.state.log_history[0]
    # weights copied at each new step: the initial ones, then those after step 1
    assert len(engine.synced) == 2 and engine.prefix_resets == 2
    assert torch.equal(engine.synced[0], initial)
    assert torch.equal(engine.synced[1], moves.after_step[0])
    # one vLLM request per prompt, with n = the group size
    assert [params.n for params in engine.params] == [2, 2, 2, 2]


@pytest.mark.slow
def test_vllm_sees_the_training_prompt_and_frames(stand_in_vllm, model_dir, rows, tmp_path):
    trainer = make_trainer(model_dir, rows, tmp_path / "frames")
    trainer.model.train()
    collated = trainer.data_collator([rows[i] for i in (0, 0, 1, 1)])
    trainer._prepare_inputs(collated)
    engine = trainer.vllm_generation.llm
    expected = [collated[i]["rollout"].prompt_ids for i in (0, 2)]
    assert engine.prompt_ids == expected  # vLLM's processing == the training encoding
    builder = RequestBuilder("p2r", TEST_POLICY)
    for prompt, row in zip(engine.prompts, (rows[0], rows[1]), strict=True):
        frames, _ = prompt["multi_modal_data"]["video"][0]
        assert np.array_equal(frames, builder(item_from_row(row)).frames)
        size = prompt["mm_processor_kwargs"]["size"]
        assert size == {"shortest_edge": TEST_POLICY.max_pixels,
                        "longest_edge": TEST_POLICY.max_pixels}
    params = engine.params[0]
    assert set(params.logit_bias) == set(placeholder_token_ids(trainer.model.config))
    assert all(bias <= -100 for bias in params.logit_bias.values())
    assert set(params.stop_token_ids) == set(trainer.eos_token_ids)
    assert params.max_tokens == trainer.max_completion_length and params.logprobs == 0


@pytest.mark.slow
def test_vllm_sees_the_training_prompt_of_an_image_item(stand_in_vllm, model_dir, rows,
                                                       image_row, tmp_path):
    trainer = make_trainer(model_dir, [*rows, image_row], tmp_path / "image")
    trainer.model.train()
    collated = trainer.data_collator([rows[0], rows[0], image_row, image_row])
    trainer._prepare_inputs(collated)
    engine = trainer.vllm_generation.llm
    assert engine.prompt_ids == [collated[i]["rollout"].prompt_ids for i in (0, 2)]
    image_prompt = engine.prompts[1]
    assert "video" not in image_prompt["multi_modal_data"]
    image_size = dict(trainer.data_collator.processor.image_processor.size)
    assert image_prompt["mm_processor_kwargs"]["size"] == {
        "shortest_edge": image_size["shortest_edge"], "longest_edge": image_size["longest_edge"]}


@pytest.mark.slow
def test_sampling_log_probabilities_match_the_training_forward(stand_in_vllm, model_dir, rows,
                                                               tmp_path):
    trainer = make_trainer(model_dir, rows, tmp_path / "logps", max_completion_length=8)
    trainer.model.train()
    inputs = trainer._prepare_inputs(trainer.data_collator([rows[i] for i in (0, 0, 1, 1)]))
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    width = inputs["completion_ids"].shape[1]
    with torch.no_grad(), trainer._visuals(inputs["visuals"]):
        training = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, width)[0]
    valid = inputs["completion_mask"].bool()
    sampled = inputs["sampling_per_token_logps"]
    assert torch.allclose(sampled[valid], training[valid], atol=1e-4)
    assert valid.sum() > 8


def test_a_batch_vllm_refuses_names_its_items(stand_in_vllm, model_dir, rows, tmp_path,
                                              monkeypatch):
    trainer = make_trainer(model_dir, rows, tmp_path / "refused")
    trainer.model.train()

    def refuse(*_, **__):
        raise ValueError("The decoder prompt (length 9000) is longer than the maximum model "
                         "length of 8192.")

    monkeypatch.setattr(trainer.vllm_generation.llm, "generate", refuse)
    with pytest.raises(RolloutError, match=r"unit/0, unit/1: The decoder prompt"):
        trainer._prepare_inputs(trainer.data_collator([rows[i] for i in (0, 0, 1, 1)]))


def test_groups_are_runs_of_one_request():
    first, second = object(), object()
    assert prompt_groups([first, first, second, second, first]) == [
        (first, 2), (second, 2), (first, 1)]


def test_sampled_tokens_keep_request_and_sample_order():
    outputs = [RequestOutput([Completion([5, 6], [{5: Logprob(-0.5)}, {6: Logprob(-1.0)}]),
                              Completion([7], [{7: Logprob(-2.0)}])]),
               RequestOutput([Completion([8], [{8: Logprob(-0.25)}])])]
    assert sampled_tokens(outputs) == ([[5, 6], [7], [8]], [[-0.5, -1.0], [-2.0], [-0.25]])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"vllm_mode": "server"}, "no route for a prompt's video"),
    ({"vllm_tensor_parallel_size": 2}, "tensor parallelism"),
    ({"vllm_enable_sleep_mode": True}, "sleep mode"),
])
def test_unsupported_vllm_settings_are_refused_before_loading(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        check_rollout_engine(grpo_config(tmp_path, **{**VLLM_SETTINGS, **overrides}))


def test_continuous_batching_is_refused(tmp_path):
    with pytest.raises(ValueError, match="continuous-batching"):
        check_rollout_engine(grpo_config(tmp_path, use_transformers_continuous_batching=True))


def test_missing_vllm_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(BackendError, match=r"pip install 'p2r\[vllm\]'"):
        check_rollout_engine(grpo_config(tmp_path, **VLLM_SETTINGS))
