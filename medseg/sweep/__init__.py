"""Optuna glue for Hydra sweeps: search-space parsing, study storage, the sweeper, the summary.

The Hydra plugin registration lives in ``hydra_plugins/medseg_optuna_sweeper``; see ``docs/sweeps.md``.
"""
