"""``medseg-eval``: re-evaluate a finished run folder on a split.

Examples::

    medseg-eval run_dir=outputs/train/2026-11-23_10-00-00
    medseg-eval run_dir=... split=val ckpt=last
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir


@hydra.main(config_path=config_dir(), config_name="eval", version_base="1.3")
@clean_errors("medseg-eval")
def main(cfg: DictConfig) -> None:
    from medseg.pipelines.eval import evaluate_run

    out = evaluate_run(cfg, HydraConfig.get().runtime.output_dir)
    print(f"\nEvaluation written to {out}")


if __name__ == "__main__":
    main()
