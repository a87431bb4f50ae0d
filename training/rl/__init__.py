"""Reinforcement learning: PA-GRPO (and GRPO), its rewards, the perception/reasoning token
segments, group-normalised advantages, and vLLM rollouts."""
