"""Write a synthetic dataset in the exact CHASE_DB1 layout (see :mod:`medseg.data.formats.chase`).

The fundus images come from :func:`medseg.data.synth.fundus.make_fundus` (the DRIVE generator's),
at CHASE's 999x960 by default, saved as JPEG like the originals; the two observers' labels are
PNGs (the second misses some of the thinnest vessels, as in DRIVE's second observer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.data.synth.drive import second_observer
from medseg.data.synth.fundus import make_fundus
from medseg.utils.io import write_image, write_json_atomic

MARKER = ".medseg_synthetic.json"


def write_chase(out: str | Path, n_subjects: int = 14, height: int = 960, width: int = 999, seed: int = 0,
                quality: int = 95) -> Path:
    """Write ``Image_NN{L,R}.jpg`` + ``_1stHO.png`` / ``_2ndHO.png`` for ``n_subjects`` subjects.

    Image ``k`` (subject-major, L before R) is ``make_fundus(np.random.default_rng((seed, k)),
    height, width)``; the JPEG is lossy (``quality``), the labels exact. Returns ``out``.
    """
    out = Path(out)
    for s in range(n_subjects):
        for e, eye in enumerate("LR"):
            k = 2 * s + e
            rng = np.random.default_rng((seed, k))
            sample = make_fundus(rng, height, width)
            stem = f"Image_{s + 1:02d}{eye}"
            write_image(out / f"{stem}.jpg", sample.image, "JPEG", quality=quality)
            write_image(out / f"{stem}_1stHO.png", sample.vessels * np.uint8(255), "PNG")
            second = second_observer(rng, sample.vessels)
            write_image(out / f"{stem}_2ndHO.png", second * np.uint8(255), "PNG")
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.chase", "seed": seed,
                                     "n_subjects": n_subjects, "size": [height, width]})
    return out
