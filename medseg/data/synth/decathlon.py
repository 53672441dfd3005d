"""Write a synthetic Medical Segmentation Decathlon task (see :mod:`medseg.data.formats.decathlon`).

``TaskXX_Name/dataset.json`` (``modality``, ``labels`` as ``{"0": "background", ...}``, ``training``
and ``test`` lists), ``imagesTr/shapes_001.nii.gz`` **4D** (x, y, z, modality) when there are two
or more modalities, ``labelsTr/shapes_001.nii.gz`` (0 background, 1 round, 2 square, 3 diamond),
``imagesTs/``, and the macOS ``._shapes_001.nii.gz`` companions the real tar files contain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.data.formats.nifti import write_nifti
from medseg.data.synth.folder import MARKER
from medseg.data.synth.nnunet import CLASSES, _case
from medseg.utils.io import write_json_atomic, write_text_atomic


def write_decathlon(
    out: str | Path,
    n: int = 10,
    n_test: int = 2,
    size: Sequence[int] = (32, 32, 32),
    channels: int = 2,
    seed: int = 0,
    apple_double: bool = True,
) -> Path:
    """Write ``n`` labelled and ``n_test`` unlabelled cases; ``apple_double`` adds ``._*`` junk files."""
    out = Path(out)
    spacing = (1.0, 1.0, 2.0)
    affine = np.diag([*spacing, 1.0])
    training, test = [], []
    for i in range(n + n_test):
        chans, seg = _case(np.random.default_rng((seed, i)), tuple(size), channels)
        name = f"shapes_{i + 1:03d}.nii.gz"
        folder = "imagesTr" if i < n else "imagesTs"
        image = np.stack(chans, axis=-1) if channels > 1 else chans[0]
        write_nifti(out / folder / name, image.astype(np.float32), affine,
                    spacing=spacing + (1.0,) * (image.ndim - 3))
        if apple_double:
            (out / folder / f"._{name}").write_bytes(b"\x00\x05\x16\x07Mac OS X        ")
        if i < n:
            write_nifti(out / "labelsTr" / name, seg, affine, spacing=spacing)
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        else:
            test.append(f"./imagesTs/{name}")
    modality = {"0": "MRI-A", "1": "MRI-B"} if channels > 1 else {"0": "MRI-A"}
    write_text_atomic(out / "dataset.json", json.dumps({
        "name": out.name, "description": "synthetic shapes", "tensorImageSize": "4D" if channels > 1 else "3D",
        "modality": {k: v for k, v in modality.items() if int(k) < channels},
        "labels": {"0": "background", **{str(k + 1): c for k, c in enumerate(CLASSES)}},
        "numTraining": n, "numTest": n_test, "training": training, "test": test}, indent=2) + "\n")
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.decathlon", "seed": seed, "n": n,
                                     "n_test": n_test, "size": list(size), "channels": channels})
    return out
