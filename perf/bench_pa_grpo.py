"""PA-GRPO step time against plain GRPO step time, same settings, one run.

Usage::

    python perf/bench_pa_grpo.py                       # demo model, CPU, ~1 min
    python perf/bench_pa_grpo.py --repeats 5 --steps 20 --completion-length 128
    python perf/bench_pa_grpo.py --model /ckpt/sft --device cuda --batch 16 --generations 8

Both trainers are :class:`p2r_train.rl.pa_grpo.PAGRPOTrainer` on the same model, data (synthetic
videos), seed and settings; they differ only in the reward design: PA-GRPO (six process
components, a judge, (B, T) advantages) against ``--process-agnostic`` (plain GRPO: one
reward, (B,) advantages, no judge). The judge is an in-process stand-in that answers after
``--judge-latency-ms`` (default 0: the trainer's own overhead is what is measured; a positive
latency shows how much of a slow judge the log-prob passes hide when ``--beta`` > 0).

The two trainers run in one process and take turns, one optimizer step each (rollout,
scoring, loss, backward, optimizer): every pair of steps sees the same machine load, and each
trainer keeps its own random stream, so both sample the same completions. The order is
A B B A A B ..., so each design goes first in half the pairs. The first pair is warm-up.
Reported: the median of the per-pair ratios (the robust number on a shared machine) and the
ratio of median step times, wall and CPU. On a CPU the benchmark uses one torch thread
(``--threads``) so that waiting threads do not count as work. A second table times the
PA-specific work alone (token split, reward table, per-token advantages) on one batch, and the
main table shows the CPU time per step spent in the trainer's reward and advantage methods
(split, judge wait, reward table, advantages, process metrics), noise-free by nature. The
whole comparison is repeated ``--repeats`` times with fresh trainers built in alternating
order, and all pairs pooled. Both trainers hold a model: for a large checkpoint, mind the
memory. On CUDA the main table also shows each design's peak GPU memory during its steps
(both trainers' weights and optimizer states included, so the difference between the rows is
what the design itself adds). ``--control`` times GRPO against itself: the ratio it prints
is this machine's noise floor (on a shared 2-core CPU it was within +-4%, as large as the
goal's margin).

Goal: PA-GRPO step time at most 1.03x plain GRPO's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

GOAL = 1.03


class InstantJudge:
    """A stand-in judge: an observation is sufficient when it names the answer's option text."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    def sufficiency_many(self, queries: list) -> list:
        from p2r_eval.judge.verdicts import Verdict

        time.sleep(self.latency_s)
        return [
            Verdict(sufficient=q.answer.lower() in q.observation.lower(), rationale="", raw="",
                    model="stand-in", prompt_version="bench", cached=False, input_tokens=0,
                    output_tokens=0, retries=0)
            for q in queries
        ]


def synthetic_rows(workdir: Path, prompts: int) -> list[dict[str, Any]]:
    from p2r_train.inputs.data import rl_rows

    from p2r_eval.media.synthetic_media import write_video

    records = []
    for index in range(prompts):
        name = f"clip{index}.mp4"
        write_video(workdir / name, seconds=1, fps=8, width=96, height=64, seed=index)
        records.append({
            "problem_id": index, "problem": "Which way does the square move?",
            "data_type": "video", "problem_type": "multiple choice",
            "options": ["A. left", "B. right"], "solution": "<answer>A</answer>", "path": name,
        })
    return rl_rows(records, workdir)


def make_trainer(args: argparse.Namespace, model: str, rows: list, design: Any,
                 output: Path) -> Any:
    from p2r_train.inputs.data import to_dataset
    from p2r_train.rl.pa_grpo import PAGRPOTrainer
    from transformers import AutoProcessor
    from trl import GRPOConfig

    from p2r_eval.media.requests import RequestBuilder
    from p2r_eval.media.video import FramePolicy

    on_gpu = args.device == "cuda"
    config = GRPOConfig(
        output_dir=str(output), use_cpu=not on_gpu, bf16=on_gpu, report_to="none",
        per_device_train_batch_size=args.batch, num_generations=args.generations,
        max_completion_length=args.completion_length, max_steps=args.steps + 1,
        logging_steps=1, save_strategy="no", gradient_checkpointing=False, beta=args.beta,
        learning_rate=1e-6, seed=0, shuffle_dataset=False, loss_type="grpo",
        disable_tqdm=True, log_level="error",
        model_init_kwargs={"dtype": "bfloat16" if on_gpu else "float32"},
    )
    policy = FramePolicy(num_frames=args.frames, max_pixels=args.max_pixels)
    judge = InstantJudge(args.judge_latency_ms / 1000) if design.needs_judge else None
    return PAGRPOTrainer(model, config, to_dataset(rows), AutoProcessor.from_pretrained(model),
                         builder=RequestBuilder("p2r", policy), design=design, judge=judge)


class TakeTurns:
    """Two trainers on two threads, one optimizer step each in turn, in the order A B B A
    A B B A ...: each design goes first in half of the pairs, which cancels any advantage of
    running first or second.

    A trainer waits for its turn where its step begins (its next batch already fetched) and
    hands the turn over at the beginning of its following step, so batch preparation never
    overlaps the other trainer's timed step. Each trainer's torch random state is restored
    when its turn comes, so both draw the same random stream.
    """

    def __init__(self, seed: int) -> None:
        self.schedule = itertools.cycle((0, 1, 1, 0))
        self.turn = next(self.schedule)
        self.started = [False, False]
        self.finished = [False, False]
        self.condition = threading.Condition()
        self.rng = [_rng_state_after(seed)] * 2
        self.wall: list[list[float]] = [[], []]
        self.cpu: list[list[float]] = [[], []]
        self.peak_gib: list[list[float]] = [[], []]
        self._start = (0.0, 0.0)

    def _hand_over(self, index: int) -> None:
        self.rng[index] = _rng_state()
        self.turn = next(self.schedule)
        self.condition.notify_all()

    def begin(self, index: int) -> None:
        with self.condition:
            if self.started[index]:
                self._hand_over(index)
            self.started[index] = True
            self.condition.wait_for(lambda: self.turn == index or self.finished[1 - index])
            _set_rng_state(self.rng[index])
        if torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
        self._start = (time.perf_counter(), time.process_time())

    def end(self, index: int) -> None:
        self.wall[index].append(time.perf_counter() - self._start[0])
        self.cpu[index].append(time.process_time() - self._start[1])
        if torch.cuda.is_initialized():
            self.peak_gib[index].append(torch.cuda.max_memory_allocated() / 2**30)

    def finish(self, index: int) -> None:
        with self.condition:
            self.finished[index] = True
            self._hand_over(index)

    def callback(self, index: int) -> Any:
        from transformers import TrainerCallback

        turns = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                turns.begin(index)

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                turns.end(index)

            def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                turns.finish(index)

        return _Callback()


def _rng_state() -> tuple[torch.Tensor, list[torch.Tensor]]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, list[torch.Tensor]]) -> None:
    torch.set_rng_state(state[0])
    if state[1]:
        torch.cuda.set_rng_state_all(state[1])


def _rng_state_after(seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    saved = _rng_state()
    torch.manual_seed(seed)
    state = _rng_state()
    _set_rng_state(saved)
    return state


# The trainer methods that do the reward and advantage work (the judge wait included).
SCORING_METHODS = ("_start_scoring", "_calculate_rewards", "_advantages", "_log_process_metrics")


def time_scoring(trainer: Any, seconds: list[float]) -> None:
    """Add the CPU time of every call of :data:`SCORING_METHODS` to ``seconds``."""
    for name in SCORING_METHODS:
        method = getattr(trainer, name)

        def timed(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return _method(*args, **kwargs)
            finally:
                seconds.append(time.process_time() - start)

        setattr(trainer, name, timed)


def paired_step_times(trainers: list[Any]) -> TakeTurns:
    """Train both trainers in turn; their per-step times, warm-up pair dropped."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    turns = TakeTurns(seed=0)
    for index, trainer in enumerate(trainers):
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(turns.callback(index))
    threads = [threading.Thread(target=trainer.train) for trainer in trainers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for times in (*turns.wall, *turns.cpu, *turns.peak_gib):
        if times:
            del times[0]
    return turns


def overhead_table(args: argparse.Namespace, model: str) -> list[list[Any]]:
    """Milliseconds of PA-specific work on one batch of the benchmark's shape."""
    from p2r_train.rl.advantages import group_normalize
    from p2r_train.rl.pa_grpo import design_advantages
    from p2r_train.rl.rewards import (
        PerceptionJudge,
        RewardDesign,
        pending_perception,
        score_completions,
    )
    from p2r_train.rl.segments import TokenPieces, span_table, split_completion
    from transformers import AutoProcessor

    from p2r_eval.core.items import Item

    tokenizer = AutoProcessor.from_pretrained(model).tokenizer
    rows = args.batch * args.generations
    words = " the square moves left" * (args.completion_length // 8)
    text = f"<observation>{words}</observation><think>{words}</think><answer>A</answer>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: args.completion_length]
    item = Item("bench", "0", "Which way?", ("A. left", "B. right"), "A", "multiple choice",
                None)
    pieces = TokenPieces(tokenizer)
    judge = InstantJudge(0.0)
    timings = []
    for name, design in (("PA-GRPO", RewardDesign()),
                         ("GRPO", RewardDesign(process_agnostic=True))):
        start = time.perf_counter()
        splits = [split_completion(ids, pieces) for _ in range(rows)]
        texts = [text] * rows
        perception = pending_perception(PerceptionJudge(judge), design, [item] * rows, texts)
        table = score_completions([item] * rows, texts, splits, design, perception)
        rewards = torch.tensor([table.columns[c] for c in design.components]).T
        advantages = design_advantages(rewards, design, span_table(splits), len(ids),
                                       args.generations)
        group_normalize(rewards.sum(1), args.generations)
        elapsed = (time.perf_counter() - start) * 1000
        timings.append([name, rows, len(ids), f"{elapsed:.1f}", tuple(advantages.shape)])
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo", help="'demo' or a checkpoint folder")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed steps per design and repeat")
    parser.add_argument("--control", action="store_true",
                        help="time GRPO against GRPO instead: the noise floor of this machine")
    parser.add_argument("--repeats", type=int, default=5,
                        help="fresh pairs of trainers (built in alternating order)")
    parser.add_argument("--batch", type=int, default=8, help="rows per device per step")
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--completion-length", type=int, default=64)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--max-pixels", type=int, default=64 * 28 * 28)
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--judge-latency-ms", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: steadier timings on a shared CPU)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the figures to this JSON file")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)

    from p2r_train.rl.rewards import RewardDesign

    from p2r_eval.models.demo import ensure_demo_model

    model = str(ensure_demo_model()) if args.model == "demo" else args.model
    second = ("GRPO again (control)", RewardDesign(process_agnostic=True)) if args.control else (
        "PA-GRPO", RewardDesign())
    designs = {"GRPO (--process-agnostic)": RewardDesign(process_agnostic=True),
               second[0]: second[1]}
    wall: list[list[float]] = [[], []]
    cpu: list[list[float]] = [[], []]
    scoring: list[list[float]] = [[], []]
    peak_gib: list[list[float]] = [[], []]
    with tempfile.TemporaryDirectory(prefix="p2r-bench-pa-grpo-") as workdir:
        rows = synthetic_rows(Path(workdir), max(1, args.batch // args.generations) * 4)
        for repeat in range(args.repeats):
            # fresh trainers each repeat, built in alternating order
            order = [0, 1] if repeat % 2 == 0 else [1, 0]
            built = {index: make_trainer(args, model, rows, list(designs.values())[index],
                                         Path(workdir) / f"run{repeat}-{index}")
                     for index in order}
            for index in (0, 1):
                time_scoring(built[index], scoring[index])
            turns = paired_step_times([built[0], built[1]])
            for index in (0, 1):
                wall[index] += turns.wall[index]
                cpu[index] += turns.cpu[index]
                peak_gib[index] += turns.peak_gib[index]
    print(f"model {model}, device {args.device}, batch {args.batch} x {args.generations} "
          f"generations, {args.completion_length} new tokens, {args.frames} frames, "
          f"beta {args.beta}, judge latency {args.judge_latency_ms:g} ms, "
          f"{args.repeats} repeats x {args.steps} timed steps each, in turn")
    steps = args.repeats * (args.steps + 1)
    table = [[name, len(wall[i]), f"{statistics.median(wall[i]):.3f}", f"{min(wall[i]):.3f}",
              f"{statistics.median(cpu[i]):.3f}", f"{1000 * sum(scoring[i]) / steps:.1f}",
              f"{max(peak_gib[i]):.1f}" if peak_gib[i] else "n/a"]
             for i, name in enumerate(designs)]
    print(tabulate(table, headers=["design", "steps", "median wall s", "min wall s",
                                   "median CPU s", "rewards+advantages ms/step",
                                   "peak GPU GiB in its steps"]))
    paired_ratios = {}
    for label, times in (("wall", wall), ("CPU", cpu)):
        paired = statistics.median(pa / grpo for grpo, pa in zip(*times, strict=True))
        paired_ratios[label] = paired
        of_medians = statistics.median(times[1]) / statistics.median(times[0])
        verdict = "met" if paired <= GOAL else "NOT met"
        print(f"{second[0]} / GRPO step time ({label}): median of paired ratios {paired:.3f}x, "
              f"ratio of medians {of_medians:.3f}x (goal <= {GOAL}x: {verdict})")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "model": model, "device": args.device, "batch": args.batch,
            "generations": args.generations, "completion_length": args.completion_length,
            "frames": args.frames, "steps": len(wall[0]),
            "median_step_s": {name: statistics.median(wall[i]) for i, name in enumerate(designs)},
            "peak_gib": {name: max(peak_gib[i]) if peak_gib[i] else None
                         for i, name in enumerate(designs)},
            "paired_ratio": paired_ratios, "goal": GOAL}, indent=1))
    print()
    print("PA-specific work on one batch (split, rewards, advantages):")
    print(tabulate(overhead_table(args, model),
                   headers=["design", "completions", "tokens", "ms", "advantages"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
