"""Training for process-aware video reasoning: SFT warm-up and PA-GRPO (``p2r-train``).

- :mod:`training.data`: records to items and dataset rows (paths, never frames);
- :mod:`training.collate`: media decoding and processor batches for SFT and rollouts;
- :mod:`training.sft`: the SFT trainer; :mod:`training.pa_grpo`: the PA-GRPO trainer;
- :mod:`training.segments`: perception/reasoning split of sampled token ids;
- :mod:`training.rewards`: reward components and ablation switches;
- :mod:`training.advantages`: GRPO and per-process advantages (``process_advantages``);
- :mod:`training.vision`: visual inputs for every forward, one encoder pass per prompt;
- :mod:`training.dynamics`: the training-dynamics plot; :mod:`training.cli`: the command.
"""
