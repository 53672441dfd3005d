"""Where the Hydra configs live: ``conf/`` in a source checkout, ``medseg/conf`` in an installed wheel,
or ``$MEDSEG_CONFIG_DIR``."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> str:
    env = os.environ.get("MEDSEG_CONFIG_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent.parent
    candidates += [here.parent / "conf", here / "conf"]
    for c in candidates:
        if (c / "train.yaml").is_file():
            return str(c)
    raise FileNotFoundError(f"medseg configs not found (looked in {', '.join(map(str, candidates))})")

