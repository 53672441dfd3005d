"""``medseg-ensemble``: fold checkpoints and/or experiments combined and ranked against each other.

Examples::

    medseg-ensemble 'members=[outputs/kfold/drive_unet_5fold_seed42]'
    medseg-ensemble 'members=[outputs/kfold/a,outputs/kfold/b,outputs/train/c]' method=vote
    medseg-ensemble 'members=[outputs/kfold/a,outputs/kfold/b]' method=weighted weights=oof
"""

from __future__ import annotations

from typing import cast

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir


@hydra.main(config_path=config_dir(), config_name="ensemble", version_base="1.3")
@clean_errors("medseg-ensemble")
def main(cfg: DictConfig) -> None:
    from medseg.metrics import metrics_from_config
    from medseg.pipelines.ensemble import evaluate_ensemble

    out = HydraConfig.get().runtime.output_dir
    weights = cfg.weights if isinstance(cfg.weights, str) or cfg.weights is None else list(cfg.weights)
    board = evaluate_ensemble(
        list(cfg.members), out, split=cfg.split, method=cfg.method, weights=weights, ckpt=str(cfg.ckpt),
        tta=cast(dict, OmegaConf.to_container(cfg.tta)) if OmegaConf.is_config(cfg.tta) else bool(cfg.tta),
        threshold=cfg.threshold, metrics=metrics_from_config(cfg), nsd_tolerance=cfg.nsd_tolerance,
        overrides=cfg.overrides,
    )
    cols = [c for c in ("kind", "n_cases", "dice", "dice_ci_low", "dice_ci_high") if c in board]
    print(f"\n{board[cols].to_string(float_format='%.4f')}\n\n  report: {out}/report.md")


if __name__ == "__main__":
    main()
