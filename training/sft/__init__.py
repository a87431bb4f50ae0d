"""Supervised fine-tuning on process-aware CoT data."""
