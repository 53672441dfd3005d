"""Experiment tracking: logger factories (wandb) with sensible defaults for runs, folds and sweep trials."""
