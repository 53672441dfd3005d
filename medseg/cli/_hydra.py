"""Where the Hydra configs live: ``conf/`` in a source checkout, ``medseg/conf`` in an installed wheel,
or ``$MEDSEG_CONFIG_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def config_dir() -> str:
    env = os.environ.get("MEDSEG_CONFIG_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent.parent
    candidates += [here.parent / "conf", here / "conf"]
    for c in candidates:
        if (c / "train.yaml").is_file():
            return str(c)
    raise FileNotFoundError(f"medseg configs not found (looked in {', '.join(map(str, candidates))})")


def _under_run(run_dir: object, sub: str, fallback: str) -> str:
    """``${medseg_under_run:${run_dir},predict,<fallback>}``: ``<run_dir>/predict`` when a run folder is
    given, else the fallback (``medseg-predict package=...`` has no run folder)."""
    return f"{run_dir}/{sub}" if run_dir not in (None, "", "None") else str(fallback)


if not OmegaConf.has_resolver("medseg_under_run"):
    OmegaConf.register_new_resolver("medseg_under_run", _under_run)
