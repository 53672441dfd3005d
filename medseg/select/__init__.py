"""Out-of-fold selection: the records medseg-kfold writes (:mod:`.oof`), the selection math on arrays
(:mod:`.core`) and the report's figures (:mod:`.report`). The work behind ``medseg-select`` is
:func:`medseg.pipelines.select.select`."""

from medseg.select.core import (
    GreedyResult,
    Reliability,
    case_dice,
    choose_postprocessing,
    fit_temperature,
    fit_thresholds,
    greedy_ensemble,
    reliability,
)
from medseg.select.oof import OOFCase, Source, check_compatible, load_oof_case, save_oof_case, sources_from

__all__ = ["GreedyResult", "OOFCase", "Reliability", "Source", "case_dice", "check_compatible",
           "choose_postprocessing", "fit_temperature", "fit_thresholds", "greedy_ensemble", "load_oof_case",
           "reliability", "save_oof_case", "sources_from"]
