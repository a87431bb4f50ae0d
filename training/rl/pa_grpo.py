"""PA-GRPO (process-aware GRPO) for video models, as a subclass of TRL's ``GRPOTrainer``.

What this class changes in TRL 1.16's GRPO, and where:

Video in every forward
    TRL gives images to generation and to its log-prob passes, but videos to neither of its
    training forwards. Here each prompt is encoded once in the dataloader
    (:class:`p2r_train.inputs.collate.RolloutCollator`): its token ids and one shared
    :class:`~training.collate.VisualInput`. ``_tokenize_prompts`` hands TRL those ids,
    ``_generate_single_turn`` samples with the visuals (vision placeholders suppressed), and
    ``_get_per_token_logps_and_entropies`` gives the same visuals to the old/reference passes
    and to the training forward, whose rows carry them through TRL's shuffle and split as
    the ``visuals`` column. The vision encoder runs once per prompt (see
    :mod:`p2r_train.inputs.vision`). With ``use_vllm`` (colocate mode) TRL's engine samples instead,
    from the same frames (:mod:`p2r_train.rl.vllm_rollouts`).

Rewards per process
    One TRL reward function per component (:mod:`p2r_train.rl.rewards`), all read from one table
    computed per batch, so TRL logs ``rewards/<component>/mean`` as usual. The judge starts as
    soon as the completions exist and works while the log-prob passes run.

Advantages per process
    After TRL has scored a batch, its advantages are replaced: PA-GRPO's (B, T) advantages
    from :func:`p2r_train.rl.advantages.process_advantages` (perception tokens split off on token
    ids by :mod:`p2r_train.rl.segments`), or one advantage per completion
    (:func:`p2r_train.rl.advantages.group_normalize`) for ``--no-separation`` and
    ``--process-agnostic``. TRL's loss already accepts (B, T) advantages.

Resume
    Through :mod:`p2r_train.tracking.checkpoints` (weights loaded with ``from_pretrained``'s key
    mapping; only complete checkpoints taken).

Metrics, per logging step: each process's reward mean, the advantage-collapse fraction per
process (groups whose rewards are all equal), the think-answer mismatch rate (when some
completion had a think and an answer to compare), the perception and reasoning token counts,
judge failures. TRL's ``reward_std``, ``frac_reward_zero_std`` and completions-table
advantages are replaced by those of the advantages actually used (:func:`spread_metrics`),
and a step whose groups all collapsed (zero policy gradient) is warned about.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch
import trl
from p2r_train.inputs.collate import RolloutCollator, VisualInput, training_processor
from p2r_train.inputs.data import default_media_root, read_records, rl_rows, to_dataset
from p2r_train.inputs.vision import (
    cache_features,
    distinct,
    freeze_vision_tower,
    is_vision_frozen,
    placeholder_token_ids,
    visual_forward_kwargs,
)
from p2r_train.rl.advantages import (
    collapsed_groups,
    group_normalize,
    nanstd,
    process_advantages,
)
from p2r_train.rl.rewards import (
    PERCEPTION_COMPONENTS,
    REASONING_COMPONENTS,
    PerceptionJudge,
    RewardDesign,
    RewardTable,
    gate_length_bonus,
    pending_perception,
    score_completions,
    weighted_sum,
)
from p2r_train.rl.segments import TokenPieces, span_table, spans_mask, split_completion
from p2r_train.rl.vllm_rollouts import RolloutSampling, VideoRollouts, check_rollout_engine
from p2r_train.tracking.checkpoints import ResumesThroughFromPretrained
from p2r_train.tracking.run import train_and_save
from trl import GRPOConfig, GRPOTrainer
from trl.models.utils import unwrap_model_for_generation
from trl.trainer.grpo_trainer import RewardFunc
from trl.trainer.utils import pad

from p2r_eval.core.items import item_from_row
from p2r_eval.media.requests import RequestBuilder
from p2r_eval.media.video import FramePolicy
from p2r_eval.models.hf import StopTokens, decode_output
from p2r_eval.models.vision_windows import group_window_attention

logger = logging.getLogger(__name__)

TESTED_TRL = (1, 16)  # the minor version whose private GRPOTrainer methods are overridden here
OVERRIDDEN_TRL_METHODS = (
    "_generate_and_score_completions", "_tokenize_prompts", "_generate_single_turn",
    "_generate", "_calculate_rewards", "_get_per_token_logps_and_entropies", "_compute_loss",
)


def check_trl_version(version: str) -> None:
    """Refuse a TRL other than :data:`TESTED_TRL`: :class:`PAGRPOTrainer` overrides private
    methods of its ``GRPOTrainer`` (:data:`OVERRIDDEN_TRL_METHODS`), which TRL changes
    between minor versions without notice."""
    tested = ".".join(map(str, TESTED_TRL))
    release = re.match(r"(\d+)\.(\d+)(?!\d)", version)
    if release is None or tuple(map(int, release.groups())) != TESTED_TRL:
        raise RuntimeError(
            f"PA-GRPO needs TRL {tested}.x, found TRL {version}: it overrides private methods "
            f"of TRL {tested}'s GRPOTrainer ({', '.join(OVERRIDDEN_TRL_METHODS)}), which other "
            f"versions change. Install it with: pip install 'trl>={tested},<{TESTED_TRL[0]}."
            f"{TESTED_TRL[1] + 1}' (or pip install 'p2r[train]')")


class RewardColumn:
    """A TRL reward function that returns one component of the current batch's table."""

    def __init__(self, name: str, trainer: PAGRPOTrainer) -> None:
        self.__name__ = name
        self.trainer = trainer

    def __call__(self, prompts: Any, completions: Any, completion_ids: Any, **_: Any
                 ) -> list[float | None]:
        return list(self.trainer.scored_table().column(self.__name__))


def _dict_setting(value: dict[str, Any] | str | None, name: str) -> dict[str, Any] | None:
    """A dict-valued training argument. The arguments parse a JSON object given as a string
    when they are built; any other string is a mistake, reported here."""
    if isinstance(value, str):
        raise TypeError(f"the training argument {name} must be a dict (or a JSON object), "
                        f"got {value!r}")
    return value


def _resolved_padding(value: int | str | None) -> int | None:
    """``pad_to_multiple_of`` once ``GRPOConfig`` has resolved ``'auto'`` to a number or None."""
    if isinstance(value, str):
        raise TypeError(f"pad_to_multiple_of={value!r} was not resolved by GRPOConfig")
    return value


def _suppressing_placeholders(args: GRPOConfig, model_config: Any) -> GRPOConfig:
    """``args`` with the vision placeholder ids added to the sampling's suppressed tokens
    (a sampled ``<|video_pad|>`` would break the next forward)."""
    kwargs = dict(_dict_setting(args.generation_kwargs, "generation_kwargs") or {})
    suppressed = set(kwargs.get("suppress_tokens") or []) | set(placeholder_token_ids(model_config))
    kwargs["suppress_tokens"] = sorted(suppressed)
    args.generation_kwargs = kwargs
    return args


def _model_config(model: Any) -> Any:
    if isinstance(model, str):
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(model)
    return model.config


class PAGRPOTrainer(ResumesThroughFromPretrained, GRPOTrainer):
    """GRPO with video in every forward, process-aware rewards and per-token advantages.

    ``design`` picks PA-GRPO or an ablation (:class:`p2r_train.rl.rewards.RewardDesign`);
    ``judge`` answers the perception sufficiency question (any object with
    ``sufficiency_many``); ``builder`` decodes media and builds the p2r prompt of an item
    (its frame policy also caps the pixels per frame). ``freeze_vision`` keeps the vision
    tower fixed, and then its features are computed once per prompt per rollout.
    """

    args: GRPOConfig  # transformers' Trainer declares TrainingArguments

    def __init__(self, model: Any, args: GRPOConfig, train_dataset: Any, processing_class: Any,
                 *, builder: RequestBuilder, design: RewardDesign | None = None,
                 judge: Any = None, freeze_vision: bool = False, **kwargs: Any) -> None:
        check_trl_version(trl.__version__)
        check_rollout_engine(args)
        if args.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError("PAGRPOTrainer computes its own advantages: keep "
                             "multi_objective_aggregation='sum_then_normalize'")
        self.design = design or RewardDesign()
        self.reward_table: RewardTable | None = None
        self._forward_visuals: list[VisualInput] | None = None
        self._rollout_rows: list[dict[str, Any]] = []
        self._pending_perception: Any = None
        self._gathered_rewards: torch.Tensor | None = None
        self._batch: tuple[list, list[str], list] = ([], [], [])
        columns: list[RewardFunc] = [RewardColumn(name, self) for name in self.design.components]
        if not args.use_vllm:
            args = _suppressing_placeholders(args, _model_config(model))
        args.remove_unused_columns = False  # rewards and media read the item columns
        super().__init__(model=model, reward_funcs=columns, args=args,
                         train_dataset=train_dataset, processing_class=processing_class, **kwargs)
        self.reward_weights = torch.tensor([self.design.weight(n) for n in self.design.components])
        processor = training_processor(processing_class, builder.policy)
        # transformers types a collator as returning a dict; GRPO's return the rows (TRL's too)
        self.data_collator = RolloutCollator(  # type: ignore[assignment]
            processor, builder, keep_requests=args.use_vllm)
        self.perception_judge = PerceptionJudge(judge) if judge is not None else None
        self.token_pieces = TokenPieces(self._tokenizer)
        self.stop_tokens = StopTokens(end=frozenset(self.eos_token_ids),
                                      pad=self._tokenizer.pad_token_id)
        for model_to_run in (self.model, self.ref_model):  # the policy, and the reference if any
            if model_to_run is not None:
                group_window_attention(model_to_run)
        if freeze_vision:
            freeze_vision_tower(self._policy())
        self.video_rollouts = (
            VideoRollouts(self.vllm_generation.llm, processor, self._rollout_sampling(args))
            if args.use_vllm else None
        )

    def _rollout_sampling(self, args: GRPOConfig) -> RolloutSampling:
        if self.max_completion_length is None:
            raise ValueError("PA-GRPO's vLLM rollouts need a max_completion_length")
        return RolloutSampling(
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
            min_p=self.min_p or 0.0, repetition_penalty=self.repetition_penalty,
            max_tokens=self.max_completion_length, end_ids=frozenset(self.eos_token_ids),
            suppressed_ids=frozenset(placeholder_token_ids(_model_config(self.model))),
            extra=dict(_dict_setting(args.generation_kwargs, "generation_kwargs") or {}),
        )

    def _policy(self) -> torch.nn.Module:
        if self.model is None:
            raise RuntimeError("PAGRPOTrainer has no model")
        return self.model

    def scored_table(self) -> RewardTable:
        """The current batch's reward table (computed in ``_calculate_rewards``)."""
        if self.reward_table is None:
            raise RuntimeError("the batch's rewards were read before the batch was scored")
        return self.reward_table

    def _scored_rewards(self) -> torch.Tensor:
        """The whole (gathered) batch's reward matrix (N, components)."""
        if self._gathered_rewards is None:
            raise RuntimeError("the batch's rewards were read before the batch was scored")
        return self._gathered_rewards

    # -- visuals ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _visuals(self, visuals: list[VisualInput] | None) -> Iterator[None]:
        """Rows of the forwards inside this block get ``visuals`` (row-aligned)."""
        previous, self._forward_visuals = self._forward_visuals, visuals
        try:
            yield
        finally:
            self._forward_visuals = previous

    def _rollout_visuals(self, rows: Sequence[dict[str, Any]]) -> list[VisualInput]:
        """The rows' visuals on the device; encoded once here when the tower is frozen."""
        visuals = [row["rollout"].visual for row in rows]
        model = self.accelerator.unwrap_model(self.model)
        for visual in distinct(visuals):
            visual.move_to(self.accelerator.device, dtype=model.dtype)
        if is_vision_frozen(model):
            cache_features(model, [v for v in distinct(visuals) if v.features is None])
        return visuals

    # -- TRL override points ----------------------------------------------------------------
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._rollout_rows = inputs
        visuals = self._rollout_visuals(inputs)
        with self._visuals(visuals):
            output = super()._generate_and_score_completions(inputs)
        output["visuals"] = visuals
        table, rewards = self.scored_table(), self._scored_rewards()
        output["advantages"] = self._advantages(table, rewards, output["completion_ids"].shape[1])
        lengths = self._gathered_lengths(table)
        self._log_process_metrics(table, rewards, lengths)
        self._log_advantages(rewards, lengths)
        return output

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict]:
        return [row["rollout"].prompt_ids for row in self._rollout_rows], None, {}

    def _generate_single_turn(self, prompt_ids: list[list[int]], images: Any,
                              multimodal_fields: Any, num_generations: int,
                              has_tool_images: bool = False
                              ) -> tuple[list[list[int]], list[list[float]] | None]:
        if self.video_rollouts is not None:
            return self._generate_with_vllm(self.video_rollouts)
        if self._forward_visuals is None:
            raise RuntimeError("sampling outside a rollout: the prompts have no visuals")
        device = self.accelerator.device
        prompts = [torch.tensor(ids) for ids in prompt_ids]
        multiple = _resolved_padding(self.pad_to_multiple_of)
        input_ids = pad(prompts, padding_value=self._tokenizer.pad_token_id, padding_side="left",
                        pad_to_multiple_of=multiple).to(device)
        attention_mask = pad([torch.ones_like(p) for p in prompts], padding_value=0,
                             padding_side="left", pad_to_multiple_of=multiple).to(device)
        checkpointing = _dict_setting(self.args.gradient_checkpointing_kwargs,
                                      "gradient_checkpointing_kwargs")
        with (
            unwrap_model_for_generation(
                self.model_wrapped, self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=checkpointing,
            ) as unwrapped,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            visual_inputs = visual_forward_kwargs(unwrapped, self._forward_visuals, input_ids)
            sequences = unwrapped.generate(input_ids=input_ids, attention_mask=attention_mask,
                                           generation_config=self.generation_config,
                                           **visual_inputs)
        completions = sequences[:, input_ids.shape[1]:].tolist()
        return [self._through_first_end(ids) for ids in completions], None

    def _generate_with_vllm(self, rollouts: VideoRollouts
                            ) -> tuple[list[list[int]], list[list[float]]]:
        """The batch's completions and their sampling log-probabilities from vLLM, with the
        policy's weights copied into the engine first at each new step (as TRL does)."""
        if self.state.global_step != self._last_loaded_step:
            self.vllm_generation.sync_weights()
            self._last_loaded_step = self.state.global_step
        requests = [row["rollout"].request for row in self._rollout_rows]
        return rollouts.generate(requests)

    def _through_first_end(self, token_ids: list[int]) -> list[int]:
        """Sampled ids up to and including the first end-of-sequence id."""
        for position, token_id in enumerate(token_ids):
            if token_id in self.stop_tokens.end:
                return token_ids[: position + 1]
        return token_ids

    def _get_per_token_logps_and_entropies(self, model: Any, input_ids: torch.Tensor,
                                           attention_mask: torch.Tensor, logits_to_keep: int,
                                           batch_size: int | None = None,
                                           compute_entropy: bool = False,
                                           compute_aux_loss: bool = False, **image_inputs: Any
                                           ) -> tuple[torch.Tensor, torch.Tensor | None,
                                                      torch.Tensor | None]:
        visuals = self._forward_visuals
        if visuals is None:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss,
                **image_inputs)
        unwrapped = self.accelerator.unwrap_model(model)
        chunk = batch_size or input_ids.shape[0]
        logps, entropies, aux_losses = [], [], []
        for start in range(0, input_ids.shape[0], chunk):
            rows = slice(start, start + chunk)
            ids, mask = input_ids[rows], attention_mask[rows]
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-logits_to_keep] = -100
            extra = visual_forward_kwargs(unwrapped, visuals[rows], ids)
            if compute_aux_loss:
                extra["output_router_logits"] = True
            with self.accelerator.autocast():
                outputs = model(input_ids=ids, attention_mask=mask, labels=labels,
                                fused_lm_head=True, **extra)
            logps.append(outputs.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                entropies.append(outputs.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                aux_losses.append(outputs.aux_loss)
        return (torch.cat(logps), torch.cat(entropies) if compute_entropy else None,
                torch.stack(aux_losses).mean() if compute_aux_loss else None)

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        with self._visuals(inputs["visuals"]):
            return super()._compute_loss(model, inputs)

    def _generate(self, prompts: list) -> tuple:
        result = super()._generate(prompts)
        self._start_scoring(result[1])
        return result

    def _start_scoring(self, completion_ids: list[list[int]]) -> None:
        """Decode and split the completions, and start the judge on them (in the background,
        while TRL computes log-probabilities)."""
        items = [item_from_row(row) for row in self._rollout_rows]
        texts = [decode_output(self._tokenizer, ids, self.stop_tokens) for ids in completion_ids]
        splits = [split_completion(ids, self.token_pieces) for ids in completion_ids]
        self._batch = (items, texts, splits)
        self._pending_perception = pending_perception(self.perception_judge, self.design,
                                                      items, texts)

    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any,
                           completion_ids_list: Any) -> torch.Tensor:
        items, texts, splits = self._batch
        self.reward_table = score_completions(items, texts, splits, self.design,
                                              self._pending_perception)
        gathered = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards = gate_length_bonus(gathered, self.design, self._group_size())
        return self._gathered_rewards

    # -- advantages ---------------------------------------------------------------------------
    def _training(self) -> bool:
        return self._policy().training

    def _group_size(self) -> int:
        size = self.num_generations if self._training() else self.num_generations_eval
        if size is None:
            raise RuntimeError("GRPOTrainer set no number of generations per prompt")
        return size

    def _local_rows(self) -> slice:
        count = len(self._rollout_rows)
        return slice(self.accelerator.process_index * count,
                     (self.accelerator.process_index + 1) * count)

    def _advantages(self, table: RewardTable, rewards: torch.Tensor, width: int
                    ) -> torch.Tensor:
        """This process's rows of :func:`design_advantages` over the whole (gathered) batch."""
        spans = span_table(table.splits, self.accelerator.device)
        advantages = design_advantages(
            rewards, self.design, self.accelerator.gather(spans), width,
            self._group_size(), scale=self.scale_rewards,
        )
        return advantages[self._local_rows()]

    # -- metrics ------------------------------------------------------------------------------
    def _gathered_lengths(self, table: RewardTable) -> torch.Tensor:
        """(N, 2) perception and reasoning token counts of the whole (gathered) batch."""
        lengths = torch.tensor([[s.perception_tokens, s.reasoning_tokens]
                                for s in table.splits],
                               dtype=torch.float32, device=self.accelerator.device)
        return self.accelerator.gather(lengths)

    def _log_advantages(self, rewards: torch.Tensor, lengths: torch.Tensor) -> None:
        """Replace what TRL logged about its own advantages (of the summed reward) by the
        advantages this design trains with: ``reward_std`` (per process for PA-GRPO),
        ``frac_reward_zero_std``, and the completions table's advantages (for PA-GRPO each
        completion's mean over its tokens, with both process advantages as columns). Warn
        when every group collapsed: every advantage is 0, so the policy gradient is too."""
        mode = "train" if self._training() else "eval"
        metrics = self._metrics[mode]
        for key in ("reward_std", "frac_reward_zero_std"):
            _drop_last(metrics, key)
        spread = spread_metrics(rewards, self.design, self._group_size())
        for key, value in spread.items():
            metrics[key].append(value)
        if mode == "train" and spread["frac_reward_zero_std"] == 1.0:
            logger.warning(
                "step %d: every group's completions got equal rewards (100%% advantage "
                "collapse): all advantages are 0 and the policy gradient is zero (only the KL "
                "term, if any, moves the model)", self.state.global_step + 1)
        advantages = process_advantage_values(rewards, self.design, self._group_size(),
                                              scale=self.scale_rewards)
        # TRL's completions log: a dict literal of deques (and defaultdicts of deques), which
        # mypy infers as a dict of Collection
        completions_log = cast("dict[str, Any]", self._logs)
        _replace_tail(completions_log["advantages"], mean_advantages(advantages, lengths).tolist())
        if len(advantages) > 1:
            for name, values in advantages.items():
                completions_log["extra"][f"advantage/{name}"].extend(values.tolist())

    def _log_process_metrics(self, table: RewardTable, rewards: torch.Tensor,
                             lengths: torch.Tensor) -> None:
        mode = "train" if self._training() else "eval"
        metrics = self._metrics[mode]
        group_size = self._group_size()
        total = total_reward(rewards, self.design)
        metrics["collapse/total"].append(collapsed_groups(total, group_size).float().mean().item())
        if not self.design.process_agnostic:
            perception, reasoning = process_rewards(rewards, self.design)
            for name, values in (("perception", perception), ("reasoning", reasoning)):
                _append_known(metrics, f"rewards/{name}/mean", _nanmean(values))
                metrics[f"collapse/{name}"].append(
                    collapsed_groups(values, group_size).float().mean().item())
        metrics["tokens/perception"].append(lengths[:, 0].mean().item())
        metrics["tokens/reasoning"].append(lengths[:, 1].mean().item())
        device = self.accelerator.device
        mismatch = self.accelerator.gather(self._mismatch_counts(table).to(device)
                                           ).view(-1, 2).sum(0)
        if mismatch[1] > 0:  # else no completion had a think and an answer to compare
            metrics["think_answer_mismatch"].append((mismatch[0] / mismatch[1]).item())
        if self.perception_judge is not None:
            metrics["judge/failures"].append(float(self.perception_judge.failures))

    def _mismatch_counts(self, table: RewardTable) -> torch.Tensor:
        """(mismatches, judged) over this process's completions."""
        from p2r_eval.report.analysis import think_answer_mismatch

        items = self._batch[0]
        flags = [think_answer_mismatch(text, item.answer_type, item.options)
                 for text, item in zip(table.texts, items, strict=True)]
        judged = [flag for flag in flags if flag is not None]
        return torch.tensor([float(sum(judged)), float(len(judged))])


def _nanmean(values: torch.Tensor) -> float:
    return torch.nanmean(values.float()).item()


def _append_known(metrics: dict[str, list[float]], key: str, value: float) -> None:
    """Log ``value`` unless it is NaN (nothing to measure this step): TRL would log None,
    and loggers such as TensorBoard warn about it at every step."""
    if not math.isnan(value):
        metrics[key].append(value)


def _drop_last(metrics: dict[str, list[float]], key: str) -> None:
    """Remove the value TRL just logged under ``key`` (and the key once it holds none)."""
    values = metrics.get(key)
    if values:
        values.pop()
    if key in metrics and not metrics[key]:
        del metrics[key]


def _replace_tail(logged: deque, values: list[float]) -> None:
    """Replace the last ``len(values)`` entries of ``logged`` (TRL's completions log)."""
    for _ in range(min(len(values), len(logged))):
        logged.pop()
    logged.extend(values)


def process_rewards(rewards: torch.Tensor, design: RewardDesign
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Perception and reasoning totals (N,) of a reward matrix (N, components)."""
    names = list(design.components)
    return (weighted_sum(rewards, names, PERCEPTION_COMPONENTS, design),
            weighted_sum(rewards, names, REASONING_COMPONENTS, design))


def total_reward(rewards: torch.Tensor, design: RewardDesign) -> torch.Tensor:
    """The single reward (N,) of the process-agnostic and no-separation designs."""
    names = list(design.components)
    return weighted_sum(rewards, names, names, design)


def normalised_rewards(rewards: torch.Tensor, design: RewardDesign) -> dict[str, torch.Tensor]:
    """The rewards (N,) that ``design`` normalises into advantages, by name: ``perception``
    and ``reasoning`` for PA-GRPO, one ``total`` for the other designs."""
    if design.per_token_advantages:
        perception, reasoning = process_rewards(rewards, design)
        return {"perception": perception, "reasoning": reasoning}
    return {"total": total_reward(rewards, design)}


def process_advantage_values(rewards: torch.Tensor, design: RewardDesign, group_size: int, *,
                             scale: str = "group") -> dict[str, torch.Tensor]:
    """Each normalised reward's advantages (N,), by the names of :func:`normalised_rewards`."""
    return {name: group_normalize(values, group_size, scale=scale)
            for name, values in normalised_rewards(rewards, design).items()}


def spread_metrics(rewards: torch.Tensor, design: RewardDesign, group_size: int
                   ) -> dict[str, float]:
    """TRL's ``reward_std`` and ``frac_reward_zero_std``, of the rewards ``design`` trains
    with: the batch std of each normalised reward (``reward_std/perception`` and
    ``reward_std/reasoning`` for PA-GRPO), and the share of groups in which each of them is
    constant, so that every advantage of the group is 0."""
    normalised = normalised_rewards(rewards, design)
    metrics = {("reward_std" if name == "total" else f"reward_std/{name}"):
               torch.nan_to_num(nanstd(values.float()), nan=0.0).item()
               for name, values in normalised.items()}
    collapsed = torch.stack([collapsed_groups(values, group_size)
                             for values in normalised.values()]).all(dim=0)
    metrics["frac_reward_zero_std"] = collapsed.float().mean().item()
    return metrics


def mean_advantages(advantages: dict[str, torch.Tensor], lengths: torch.Tensor
                    ) -> torch.Tensor:
    """(N,) each completion's advantage averaged over its tokens: the one advantage of a
    single-reward design; for PA-GRPO the perception and reasoning advantages weighted by
    the completion's perception and reasoning token counts (``lengths``, (N, 2))."""
    if "total" in advantages:
        return advantages["total"]
    weighted = advantages["perception"] * lengths[:, 0] + advantages["reasoning"] * lengths[:, 1]
    return weighted / lengths.sum(dim=1).clamp(min=1)


def design_advantages(rewards: torch.Tensor, design: RewardDesign,
                      perception_spans: torch.Tensor, width: int, group_size: int, *,
                      scale: str = "group") -> torch.Tensor:
    """The advantages ``design`` trains with, from a reward matrix (N, components).

    PA-GRPO: (N, width), perception tokens (those inside row ``i``'s spans
    ``perception_spans[i]``, a :func:`p2r_train.rl.segments.span_table`) get the perception
    advantage, the rest the reasoning advantage
    (:func:`p2r_train.rl.advantages.process_advantages`). ``--no-separation`` and
    ``--process-agnostic``: GRPO's (N,), one advantage for all tokens of a completion.
    """
    if not design.per_token_advantages:
        return group_normalize(total_reward(rewards, design), group_size, scale=scale)
    mask = spans_mask(perception_spans, width)
    perception, reasoning = process_rewards(rewards, design)
    return process_advantages(perception, reasoning, mask, group_size, scale=scale)


def run_grpo(model: str, data: Path, output: Path, config: GRPOConfig, *,
             media_root: Path | None = None, policy: FramePolicy, design: RewardDesign,
             judge: Any = None, frame_cache: Path | None = None, freeze_vision: bool = False,
             resume: bool | str | None = None, callbacks: list | None = None) -> Path:
    """Train with PA-GRPO (or the ablation ``design`` names) and save the final model (with
    processor) and the trainer state (for ``p2r-train plot``) into ``output``, where
    ``starting_model.json`` names ``model`` (step 0 for ``p2r-eval --model OUTPUT``).
    ``callbacks`` are extra trainer callbacks (e.g. the automatic checkpoint evaluation)."""
    from transformers import AutoProcessor

    rows = rl_rows(read_records(data), default_media_root(data, media_root))
    trainer = PAGRPOTrainer(
        model, config, to_dataset(rows), AutoProcessor.from_pretrained(model),
        builder=RequestBuilder("p2r", policy, frame_cache=frame_cache), design=design,
        judge=judge, freeze_vision=freeze_vision, callbacks=callbacks,
    )
    return train_and_save(trainer, model, output, resume=resume, callbacks=callbacks)
