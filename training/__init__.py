"""Training for process-aware video reasoning: SFT warm-up and PA-GRPO (``p2r-train``).

- :mod:`p2r_train.inputs.data`: records to items and dataset rows (paths, never frames);
- :mod:`p2r_train.inputs.collate`: media decoding and processor batches for SFT and rollouts;
- :mod:`p2r_train.sft.trainer`: the SFT trainer; :mod:`p2r_train.rl.pa_grpo`: the PA-GRPO trainer;
- :mod:`p2r_train.rl.segments`: perception/reasoning split of sampled token ids;
- :mod:`p2r_train.rl.rewards`: reward components and ablation switches;
- :mod:`p2r_train.rl.advantages`: GRPO and per-process advantages (``process_advantages``);
- :mod:`p2r_train.inputs.vision`: visual inputs for every forward, one encoder pass per prompt;
- :mod:`p2r_train.tracking.dynamics`: the training-dynamics plot; :mod:`p2r_train.cli`: the command.
"""
