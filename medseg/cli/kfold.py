"""``medseg-kfold``: k-fold cross-validation with out-of-fold metrics and a fold ensemble; resumable.

Examples::

    medseg-kfold experiment=drive_unet folds=5
    medseg-kfold experiment=drive_unet folds=5 debug=smoke      # a run of seconds per fold
    medseg-kfold ... hydra.run.dir=outputs/my_cv                # choose the folder (rerun = resume)
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir


@hydra.main(config_path=config_dir(), config_name="kfold", version_base="1.3")
@clean_errors("medseg-kfold")
def main(cfg: DictConfig) -> None:
    from medseg.pipelines.kfold import run_kfold

    out = HydraConfig.get().runtime.output_dir
    folds = run_kfold(cfg, out)
    print(f"\n{len(folds)}-fold cross-validation in {out}\n{folds.to_string(float_format='%.4f')}\n"
          f"  report: {out}/report.md\n  leaderboard: {out}/ensemble/leaderboard.csv")


if __name__ == "__main__":
    main()
