"""Optuna glue for Hydra sweeps (``conf/hparams_search/``): search-space parsing, study storage, the
sweeper, the summary.

The Hydra plugin registration lives in ``hydra_plugins/medseg_optuna_sweeper``; see ``docs/sweeps.md``.
Importing this package imports optuna: plain training runs do not (only sweep trials load it lazily).
"""

from medseg.hparams_search.search_space import parse_search_space, trial_overrides
from medseg.hparams_search.study import PRUNER_ATTR, RUN_DIR_ATTR, load_trial, open_storage, open_study
from medseg.hparams_search.summary import write_summary
from medseg.hparams_search.sweeper import OptunaStudySweeper

__all__ = ["OptunaStudySweeper", "PRUNER_ATTR", "RUN_DIR_ATTR", "load_trial", "open_storage", "open_study",
           "parse_search_space", "trial_overrides", "write_summary"]
