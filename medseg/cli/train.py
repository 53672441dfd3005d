"""``medseg-train``: compose the config, train, evaluate, write the run folder.

Examples::

    medseg-train                                   # default: synthetic DRIVE, classic U-Net, CPU
    medseg-train trainer.max_epochs=3 data.batch_size=4
    medseg-train data=drive data.root=../shared/data/DRIVE
"""

from __future__ import annotations

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401  (sets NO_ALBUMENTATIONS_UPDATE before albumentations is imported)
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir
from medseg.utils.runtime import configure_threads, early_environment

early_environment()  # OMP_WAIT_POLICY when sharing: libgomp reads it when torch is imported, so first

log = logging.getLogger("medseg")


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
@clean_errors("medseg-train")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    # before any tensor op: torch's inter-op pool can only be sized before the first parallel work
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    configure_threads(cfg, hydra_launcher=getattr(hc, "launcher", None), multirun=multirun,
                      group=str(hc.sweep.dir) if multirun else None)
    from medseg.pipelines.train import train

    run_dir = hc.runtime.output_dir
    results = train(cfg, run_dir)
    if "test/dice" in results:
        log.info("test Dice %.4f (mean over images); run folder: %s", results.get("test/dice", float("nan")), run_dir)
        print(f"\nResults: {run_dir}\n  report: {run_dir}/report.md\n  test Dice: {results['test/dice']:.4f}")
    metric = cfg.get("optimized_metric")
    return results.get(metric) if metric else None


if __name__ == "__main__":
    main()
