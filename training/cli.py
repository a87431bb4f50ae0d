"""``p2r-train``: SFT warm-up and PA-GRPO for video models, and a plot of a run's dynamics.

The same command runs on a laptop (the demo model, CPU) and on a cluster: launch it with
``accelerate launch --config_file training/configs/<setup>.yaml -m p2r_train.cli ...`` (see
docs/training.md). Heavy imports happen only once a command runs, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from p2r_train.tracking.auto_eval import add_auto_eval_options, auto_eval_callbacks

OVERVIEW = """\
subcommands (p2r-train SUBCOMMAND --help):
  annotate  process-aware CoT data: teacher generation, verification, observation sufficiency
  sft    supervised warm-up on VideoP2R-CoT records (observation + think + answer);
         --process-agnostic: think + answer only
  grpo   PA-GRPO (default) or an ablation: --process-agnostic, --no-separation,
         --no-perception-reward, --no-reasoning-reward, --no-length-reward
  plot   PNG of a run's training dynamics from its trainer_state.json
  recipe toy: the whole pipeline at toy scale on a CPU (data, annotate, SFT, PA-GRPO and
         GRPO, evaluation, the ablation-shaped table)
"""

SFT_EXAMPLES = """\
examples:
  p2r-train sft --model demo --data cot.json --output runs/sft-demo --max-steps 20
      the tiny offline model on CPU
  p2r-train sft --model Qwen/Qwen2.5-VL-7B-Instruct --data cot.json --output runs/sft-r1 \
      --process-agnostic
      ablation: think/answer SFT without observations (Video-R1-CoT style)
  accelerate launch --config_file training/configs/multi_gpu_zero2.yaml -m p2r_train.cli sft \\
      --model Qwen/Qwen2.5-VL-7B-Instruct --data VideoP2R-CoT-162K.json --media-root /data \\
      --output runs/sft --epochs 1 --batch-size 1 --grad-accum 4 --lr 1e-6
"""

GRPO_EXAMPLES = """\
examples:
  p2r-train grpo --model runs/sft --data rl.json --output runs/pa-grpo --judge anthropic
      PA-GRPO: perception reward from Claude (ANTHROPIC_API_KEY), separate advantages
  p2r-train grpo --model runs/sft --data rl.json --output runs/grpo --process-agnostic
      the plain GRPO baseline: one reward, one advantage, no judge
  p2r-train grpo --model runs/sft --data rl.json --output runs/no-sep --judge openai \\
      --judge-base-url http://127.0.0.1:8000/v1 --no-separation
      ablation: rewards summed, one advantage; judge served by `vllm serve`
  p2r-train grpo ... --rollouts vllm --vllm-gpu-memory-utilization 0.3
      sample rollouts with an in-process vLLM engine on each GPU (needs vllm installed)
  p2r-train grpo ... --resume
      continue from the newest checkpoint-<step> in --output
"""

SubcommandRegistrar = Callable[[Any], None]


def subcommand_registrars() -> dict[str, SubcommandRegistrar]:
    """Subcommand name -> the function that adds its parser. A new subcommand (e.g.
    ``annotate``) is one more entry here: a function ``add_subcommand(subparsers)`` that
    calls ``subparsers.add_parser(...)`` and ``set_defaults(func=...)``."""
    return {"annotate": add_annotate_subcommand, "sft": add_sft_subcommand,
            "grpo": add_grpo_subcommand, "plot": add_plot_subcommand,
            "recipe": add_recipe_subcommand}


def add_annotate_subcommand(subparsers: Any) -> None:
    """``annotate``: the process-aware CoT pipeline (training/cot/annotate.py, light to import)."""
    from p2r_train.cot.annotate import add_subcommand

    add_subcommand(subparsers)


def add_recipe_subcommand(subparsers: Any) -> None:
    """``recipe``: the whole pipeline at toy scale (training/recipe.py, light to import)."""
    from p2r_train.recipe import add_recipe_subcommand as add_subcommand

    add_subcommand(subparsers)


# -- shared options ---------------------------------------------------------------------------
def _add_common_options(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("model and data")
    io.add_argument("--model", required=True,
                    help="'demo', a local checkpoint folder or a hub id")
    io.add_argument("--data", type=Path, required=True, help="training records (.json/.jsonl)")
    io.add_argument("--output", type=Path, required=True,
                    help="run folder: checkpoints, logs, the final checkpoint")
    io.add_argument("--media-root", type=Path, default=None,
                    help="folder the records' 'path' fields are relative to "
                         "(default: the data file's folder)")
    media = parser.add_argument_group("media")
    media.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    media.add_argument("--fps", type=float, default=None,
                       help="sample at this rate instead (between --min-frames/--max-frames)")
    media.add_argument("--min-frames", type=int, default=4)
    media.add_argument("--max-frames", type=int, default=768)
    media.add_argument("--max-pixels", type=int, default=128 * 28 * 28,
                       help="pixels per frame after resizing (default 128*28*28, Video-R1's)")
    media.add_argument("--frame-cache", type=Path, default=None,
                       help="folder to keep sampled frames in, reused across epochs and runs")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=float, default=1.0)
    optim.add_argument("--max-steps", type=int, default=-1, help="stop after N steps (overrides "
                       "--epochs)")
    optim.add_argument("--batch-size", type=int, default=1, help="per device")
    optim.add_argument("--grad-accum", type=int, default=1)
    optim.add_argument("--lr", type=float, default=1e-6)
    optim.add_argument("--seed", type=int, default=42)
    optim.add_argument("--freeze-vision", action="store_true",
                       help="keep the vision tower fixed")
    optim.add_argument("--gradient-checkpointing", action="store_true")
    optim.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default="auto",
                       help="weights dtype (auto: bfloat16 on GPU, float32 on CPU)")
    optim.add_argument("--attn-implementation", default=None,
                       help="e.g. flash_attention_2 (default: transformers' choice)")
    run = parser.add_argument_group("run")
    run.add_argument("--report-to", default="tensorboard",
                     help="comma list of tensorboard, wandb, ... or 'none' (default tensorboard)")
    run.add_argument("--run-name", default=None)
    run.add_argument("--logging-steps", type=int, default=1)
    run.add_argument("--save-steps", type=int, default=500)
    run.add_argument("--save-total-limit", type=int, default=None)
    run.add_argument("--dataloader-workers", type=int, default=2,
                     help="processes decoding videos ahead of the model (default 2)")
    run.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                     help="resume from CHECKPOINT, or from the newest complete one in --output")
    run.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU exists")
    add_auto_eval_options(parser)


def _frame_policy(args: argparse.Namespace):  # p2r_eval imported lazily
    from p2r_eval.cli.settings import frame_policy_from_args

    return frame_policy_from_args(args)


def _resolve_model(spec: str) -> str:
    if spec == "demo":
        from p2r_eval.models.demo import demo_checkpoint

        return str(demo_checkpoint())
    return spec


def _report(message: str) -> None:
    """Print once per run, not once per process of a distributed launch."""
    if os.environ.get("RANK", "0") == "0":
        print(message)


def _on_gpu(args: argparse.Namespace) -> bool:
    import torch

    return torch.cuda.is_available() and not args.cpu


def trainer_settings(args: argparse.Namespace) -> dict[str, Any]:
    """TrainingArguments shared by SFT and GRPO, from the command line."""
    on_gpu = _on_gpu(args)
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if on_gpu else "float32")
    init = {"dtype": dtype}
    if args.attn_implementation:
        init["attn_implementation"] = args.attn_implementation
    report_to = [] if args.report_to == "none" else args.report_to.split(",")
    return {
        "num_train_epochs": args.epochs,
        "max_steps": args.max_steps,
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.grad_accum,
        "learning_rate": args.lr,
        "seed": args.seed,
        "gradient_checkpointing": args.gradient_checkpointing,
        "bf16": on_gpu,
        "use_cpu": not on_gpu,
        "report_to": report_to or "none",
        "run_name": args.run_name,
        "logging_steps": args.logging_steps,
        "save_steps": args.save_steps,
        "save_total_limit": args.save_total_limit,
        "dataloader_num_workers": args.dataloader_workers,
        "model_init_kwargs": init,
    }


# -- sft --------------------------------------------------------------------------------------
def add_sft_subcommand(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sft", help="supervised warm-up on VideoP2R-CoT records",
        description="Supervised fine-tuning on process-aware CoT records: the target is "
                    "<observation>…</observation><think>…</think><answer>…</answer>, the "
                    "prompt (video included) is masked out of the loss. `p2r-eval --model "
                    "OUTPUT` evaluates the run into OUTPUT/eval: the starting model as step "
                    "0, each checkpoint-<step>, and the final model saved in OUTPUT as the "
                    "last step.",
        epilog=SFT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common_options(parser)
    parser.add_argument("--process-agnostic", action="store_true",
                        help="ablation: think/answer targets with Video-R1's prompt, no "
                             "observation (evaluate with p2r-eval --prompt r1)")
    parser.set_defaults(func=run_sft_command)


def run_sft_command(args: argparse.Namespace) -> int:
    from p2r_train.sft.trainer import run_sft, sft_config

    config = sft_config(args.output, **trainer_settings(args))
    output = run_sft(_resolve_model(args.model), args.data, args.output, config,
                     media_root=args.media_root, policy=_frame_policy(args),
                     process_aware=not args.process_agnostic, frame_cache=args.frame_cache,
                     freeze_vision=args.freeze_vision, resume=args.resume,
                     callbacks=auto_eval_callbacks(args, "r1" if args.process_agnostic else "p2r"))
    _report(f"SFT checkpoint written to {output}")
    return 0


# -- grpo -------------------------------------------------------------------------------------
def _add_grpo_options(parser: argparse.ArgumentParser) -> None:
    rl = parser.add_argument_group("GRPO")
    rl.add_argument("--num-generations", type=int, default=8, help="completions per prompt")
    rl.add_argument("--max-completion-length", type=int, default=1024)
    rl.add_argument("--temperature", type=float, default=1.0)
    rl.add_argument("--beta", type=float, default=0.04, help="KL coefficient (0 = no "
                    "reference model)")
    rl.add_argument("--loss-type", default="grpo", help="TRL loss type (default grpo)")
    rl.add_argument("--scale-rewards", choices=("group", "batch", "none"), default="group")
    rl.add_argument("--rollouts", choices=("transformers", "vllm"), default="transformers",
                    help="what samples the completions: the policy with transformers' "
                         "generate (default), or a vLLM engine beside it on each GPU (TRL's "
                         "colocate mode, weights copied at every step; needs vllm)")
    rl.add_argument("--vllm-gpu-memory-utilization", type=float, default=0.3,
                    help="share of each GPU's memory the vLLM engine takes (default 0.3)")
    rl.add_argument("--vllm-max-model-length", type=int, default=None,
                    help="vLLM's context window (default: the model's)")
    ablation = parser.add_argument_group("ablations (the paper's table)")
    ablation.add_argument("--process-agnostic", action=AblationSwitch,
                          help="plain GRPO: one reward (accuracy+format+length), one advantage")
    ablation.add_argument("--no-separation", action=AblationSwitch,
                          help="process rewards summed, one advantage for all tokens")
    ablation.add_argument("--no-perception-reward", action=AblationSwitch,
                          help="drop the judge's perception accuracy reward")
    ablation.add_argument("--no-reasoning-reward", action=AblationSwitch,
                          help="drop the answer accuracy reward")
    ablation.add_argument("--no-length-reward", action=AblationSwitch,
                          help="drop both length rewards")
    judge = parser.add_argument_group("perception judge")
    judge.add_argument("--judge", choices=("anthropic", "openai", "local", "toy"), default=None,
                       help="judge backend for the perception reward (toy: the toy suite's "
                            "offline rule)")
    judge.add_argument("--judge-model", default=None)
    judge.add_argument("--judge-base-url", default=None)
    judge.add_argument("--judge-concurrency", type=int, default=16)
    judge.add_argument("--judge-cache", type=Path, default=None,
                       help="reply cache folder (default: OUTPUT/judge-cache)")


class AblationSwitch(argparse.Action):
    """An ablation flag (store true) that refuses a combination :func:`reward_design` cannot
    build, as a usage error naming both flags, before anything runs."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True)
        try:
            reward_design(namespace)
        except ValueError as error:
            raise argparse.ArgumentError(self, str(error)) from None


def add_grpo_subcommand(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "grpo", help="PA-GRPO (or an ablation) from an SFT checkpoint",
        description="Process-aware GRPO: perception tokens (the <observation> segment) get "
                    "the advantage of the perception reward (judge + format + length), "
                    "reasoning tokens that of the reasoning reward (answer accuracy + format "
                    "+ length), each normalised within its group.",
        epilog=GRPO_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common_options(parser)
    _add_grpo_options(parser)
    parser.set_defaults(func=run_grpo_command)


def reward_design(args: argparse.Namespace):  # training imported lazily
    from p2r_train.rl.rewards import RewardDesign

    return RewardDesign(
        process_agnostic=args.process_agnostic,
        separate_processes=not args.no_separation,
        perception_accuracy=not args.no_perception_reward,
        reasoning_accuracy=not args.no_reasoning_reward,
        length=not args.no_length_reward,
    )


def build_judge(args: argparse.Namespace, needed: bool) -> Any:
    if not needed:
        return None
    if args.judge is None:
        raise SystemExit("p2r-train grpo: the perception reward needs --judge (anthropic, "
                         "openai or local), or run --process-agnostic")
    from p2r_eval.judge import make_judge

    return make_judge(args.judge, model=args.judge_model, base_url=args.judge_base_url,
                      cache_dir=args.judge_cache or args.output / "judge-cache",
                      concurrency=args.judge_concurrency)


def rollout_settings(args: argparse.Namespace) -> dict[str, Any]:
    """GRPOConfig fields of the rollout engine the command line chose."""
    if args.rollouts == "transformers":
        return {}
    return {"use_vllm": True, "vllm_mode": "colocate",
            "vllm_gpu_memory_utilization": args.vllm_gpu_memory_utilization,
            "vllm_max_model_length": args.vllm_max_model_length}


def refuse_unusable_rollouts(config: Any) -> None:
    """Exit with the reason when the chosen rollout engine cannot run (before any loading)."""
    from p2r_train.rl.vllm_rollouts import check_rollout_engine

    from p2r_eval.models.base import BackendError

    try:
        check_rollout_engine(config)
    except (ValueError, BackendError) as error:
        raise SystemExit(f"p2r-train grpo: {error}") from None


def run_grpo_command(args: argparse.Namespace) -> int:
    from p2r_train.rl.pa_grpo import run_grpo
    from trl import GRPOConfig

    design = reward_design(args)
    config = GRPOConfig(
        output_dir=str(args.output), num_generations=args.num_generations,
        max_completion_length=args.max_completion_length, temperature=args.temperature,
        beta=args.beta, loss_type=args.loss_type, scale_rewards=args.scale_rewards,
        **rollout_settings(args), **trainer_settings(args))
    refuse_unusable_rollouts(config)
    output = run_grpo(_resolve_model(args.model), args.data, args.output, config,
                      media_root=args.media_root, policy=_frame_policy(args), design=design,
                      judge=build_judge(args, design.needs_judge), frame_cache=args.frame_cache,
                      freeze_vision=args.freeze_vision, resume=args.resume,
                      callbacks=auto_eval_callbacks(args, "p2r"))
    _report(f"GRPO checkpoint written to {output}")
    return 0


# -- plot -------------------------------------------------------------------------------------
def add_plot_subcommand(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plot", help="PNG of a run's training dynamics",
        description="Plot loss, per-process rewards, advantage collapse, think-answer "
                    "mismatch and segment lengths from RUN_DIR/trainer_state.json (or the "
                    "newest checkpoint's, while a run is going).",
        epilog="example:\n  p2r-train plot runs/pa-grpo      writes runs/pa-grpo/dynamics.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--output", type=Path, default=None,
                        help="PNG path (default RUN_DIR/dynamics.png)")
    parser.set_defaults(func=run_plot_command)


def run_plot_command(args: argparse.Namespace) -> int:
    from p2r_train.tracking.dynamics import plot_training_dynamics

    print(f"plot written to {plot_training_dynamics(args.run_dir, args.output)}")
    return 0


# -- entry point ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2r-train", description="Train video models with SFT and PA-GRPO (VideoP2R).",
        epilog=OVERVIEW, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for register in subcommand_registrars().values():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help()
        return 0
    code = int(args.func(args))
    leave_process_group()
    return code


def leave_process_group() -> None:
    """End a distributed launch's process group before the interpreter exits.

    Every process first waits for the others (the main one may still be writing the
    checkpoint), which also drains pending asynchronous collectives. Left to interpreter
    shutdown, a Gloo worker thread that frees such a collective's Python-owned tensor aborts
    the process ("terminate called without an active exception"), and the launcher reports a
    finished run as failed.
    """
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.barrier()
        distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
