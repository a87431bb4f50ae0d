"""Training for process-aware video reasoning: SFT warm-up and PA-GRPO (``p2r-train``).

- :mod:`p2r_train.data`: records to items and dataset rows (paths, never frames);
- :mod:`p2r_train.collate`: media decoding and processor batches for SFT and rollouts;
- :mod:`p2r_train.sft`: the SFT trainer; :mod:`p2r_train.pa_grpo`: the PA-GRPO trainer;
- :mod:`p2r_train.segments`: perception/reasoning split of sampled token ids;
- :mod:`p2r_train.rewards`: reward components and ablation switches;
- :mod:`p2r_train.advantages`: GRPO and per-process advantages (``process_advantages``);
- :mod:`p2r_train.vision`: visual inputs for every forward, one encoder pass per prompt;
- :mod:`p2r_train.dynamics`: the training-dynamics plot; :mod:`p2r_train.cli`: the command.
"""
