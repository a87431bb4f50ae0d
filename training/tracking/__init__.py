"""Watching a training run: checkpoints, training dynamics, and evaluation during training."""
