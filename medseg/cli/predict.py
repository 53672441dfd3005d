"""``medseg-predict``: masks (PNG / NIfTI), probability maps and RLE submissions from a trained run.

Examples::

    medseg-predict run_dir=outputs/train/2026-11-23_10-00-00 input_dir=new_images/
    medseg-predict run_dir=... split=test tta=true save_probs=true rle=true
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir


@hydra.main(config_path=config_dir(), config_name="predict", version_base="1.3")
@clean_errors("medseg-predict")
def main(cfg: DictConfig) -> None:
    from medseg.pipelines.predict import predict

    out = HydraConfig.get().runtime.output_dir
    table = predict(cfg, out)
    print(f"\n{len(table)} predictions written to {out}\n  index: {out}/predictions.csv")


if __name__ == "__main__":
    main()
