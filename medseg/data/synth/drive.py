"""Write a synthetic dataset in the exact DRIVE layout (see :mod:`medseg.data.formats.drive`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.data.synth.fundus import make_fundus
from medseg.utils.io import write_image, write_json_atomic

MARKER = ".medseg_synthetic.json"


def write_drive(
    out: str | Path,
    n_train: int = 20,
    n_test: int = 20,
    height: int = 584,
    width: int = 565,
    seed: int = 0,
    second_annotator: bool = True,
) -> Path:
    """Generate ``n_train`` training and ``n_test`` test images under ``out``.

    Training images are numbered 21.., test images 01.. as in the real release (numbers above the
    real ranges continue upward). Images are LZW-compressed RGB TIFFs, labels and FOV masks 0/255
    GIFs, like the originals. Returns ``out``.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    for split, n, first in (("training", n_train, 21), ("test", n_test, 1)):
        for i in range(n):
            num = f"{first + i:02d}"
            sample = make_fundus(rng, height, width)
            d = out / split
            write_image(d / "images" / f"{num}_{split}.tif", sample.image, "TIFF", compression="tiff_lzw")
            write_image(d / "1st_manual" / f"{num}_manual1.gif", sample.vessels * 255, "GIF")
            write_image(d / "mask" / f"{num}_{split}_mask.gif", sample.fov * 255, "GIF")
            if split == "test" and second_annotator:
                # a second observer: the same tree, thinnest vessels missed at random
                rough = second_observer(rng, sample.vessels)
                write_image(d / "2nd_manual" / f"{num}_manual2.gif", rough * 255, "GIF")
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.drive", "seed": seed,
                                     "n_train": n_train, "n_test": n_test, "size": [height, width]})
    return out


def second_observer(rng: np.random.Generator, vessels: np.ndarray) -> np.ndarray:
    """A second observer's label: the same tree with some of the thinnest vessels missed."""
    from scipy import ndimage

    thin = vessels & ~ndimage.binary_opening(vessels, iterations=1)
    drop = rng.random(vessels.shape) < 0.3
    return (vessels & ~(thin & drop)).astype(np.uint8)


_second_observer = second_observer  # the name before it became public
