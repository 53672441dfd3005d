"""``medseg-inspect``: read a dataset without training and print what was found, and the overrides to use.

Examples::

    medseg-inspect data=folder data.root=/path/to/STARE
    medseg-inspect data=nnunet data.root=/path/to/nnUNet_raw/Dataset004_Hippocampus
    medseg-inspect data=brats data.root=/path/to/BraTS2013 max_cases=5
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir


@hydra.main(config_path=config_dir(), config_name="inspect", version_base="1.3")
@clean_errors("medseg-inspect")
def main(cfg: DictConfig) -> None:
    from medseg.pipelines.inspect import run_inspect

    out = HydraConfig.get().runtime.output_dir
    _, text = run_inspect(cfg, out)
    print(text)
    print(f"\n(report written to {out}/inspect.json)")


if __name__ == "__main__":
    main()
