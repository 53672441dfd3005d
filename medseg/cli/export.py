"""``medseg-export``: package a trained run, a k-fold ensemble or a medseg-select result for
deployment without medseg.

Examples::

    medseg-export run_dir=outputs/train/2026-11-23_10-00-00
    medseg-export run_dir=outputs/kfold/hb_5fold_seed42 format=both out=deploy/handbone_v1
    medseg-export selection=outputs/select/2026-12-01_10-00-00/selection.json out=deploy/handbone_v2
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir


@hydra.main(config_path=config_dir(), config_name="export", version_base="1.3")
@clean_errors("medseg-export")
def main(cfg: DictConfig) -> None:
    from medseg.pipelines.export import export_run

    out = cfg.get("out") or Path(HydraConfig.get().runtime.output_dir) / "package"
    package = export_run(cfg, out)
    print(f"\npackage written to {package}\n  run it: python {package}/runner.py IMAGES --out PREDICTIONS"
          f"\n  card:   {package}/model_card.md")


if __name__ == "__main__":
    main()
