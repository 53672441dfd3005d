"""Hydra plugin registration for ``hydra/sweeper=medseg_optuna`` (implementation: :mod:`medseg.hparams_search`)."""
