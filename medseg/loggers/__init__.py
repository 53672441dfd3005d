"""Logger factories (``conf/logger/``): a wandb logger that works with no account, grouped for runs, folds
and sweep trials. CSV and TensorBoard come straight from Lightning (``_target_`` in their YAML)."""

from medseg.loggers.wandb import api_key_configured, run_identity, wandb_logger

__all__ = ["api_key_configured", "run_identity", "wandb_logger"]
