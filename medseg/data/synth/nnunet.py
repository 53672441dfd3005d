"""Write a synthetic nnU-Net v2 raw dataset (see :mod:`medseg.data.formats.nnunet`).

``DatasetXXX_Name/dataset.json``, ``imagesTr/case_000_0000<ending>`` (+ ``_0001`` for a second
channel), ``labelsTr/case_000<ending>``, ``imagesTs/`` and ``splits_final.json`` (nnU-Net's
``[{"train": [...], "val": [...]}, ...]``). The images are :func:`medseg.data.synth.folder.make_shapes`
objects: labels 1 round, 2 square, 3 diamond. Channel 0 holds the shading and noise, channel 1 a
second "modality" where only round and square objects show (so both channels are needed).
With ``regions=True`` the ``labels`` are nnU-Net region labels (``objects`` = 1|2|3,
``round_or_square`` = 1|2, ``round`` = 1) with ``regions_class_order`` [3, 2, 1].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.data.synth.folder import MARKER, _save, make_shapes
from medseg.utils.io import write_json_atomic, write_text_atomic

CLASSES = ("round", "square", "diamond")


def _case(rng: np.random.Generator, size: Sequence[int], channels: int) -> tuple[list[np.ndarray], np.ndarray]:
    s = make_shapes(rng, size)
    seg = np.zeros(s.labels.shape[1:], np.uint8)
    for k in range(len(CLASSES)):
        seg[s.labels[k] > 0] = k + 1
    chans = [s.image]
    if channels > 1:
        second = 0.3 + 0.4 * ((seg == 1) | (seg == 2)) + rng.normal(0, 0.05, seg.shape)
        chans.append(np.clip(second, 0, 1).astype(np.float32))
    return chans, seg


def write_nnunet(
    out: str | Path,
    n: int = 10,
    n_test: int = 2,
    size: Sequence[int] = (32, 32, 32),
    channels: int = 2,
    file_ending: str = ".nii.gz",
    regions: bool = False,
    folds: int | None = 5,
    seed: int = 0,
) -> Path:
    """Write ``n`` training and ``n_test`` test cases; 2D when ``size`` has 2 values (use a 2D
    ``file_ending`` such as ``.png``). ``folds`` writes ``splits_final.json`` (``None``: none)."""
    out = Path(out)
    size = tuple(int(s) for s in size)
    volume = file_ending in (".nii.gz", ".nrrd", ".mha")
    if len(size) == 3 and not volume:
        raise ValueError(f"a 3D size needs a volume file_ending (.nii.gz, .nrrd, .mha), got {file_ending!r}")
    ext = file_ending.lstrip(".")
    ids = [f"case_{i:03d}" for i in range(n + n_test)]
    for i, cid in enumerate(ids):
        chans, seg = _case(np.random.default_rng((seed, i)), size, channels)
        folder = "imagesTr" if i < n else "imagesTs"
        for c, arr in enumerate(chans):
            _save(out / folder / f"{cid}_{c:04d}.{ext}", arr if volume else (arr * 255 + 0.5).astype(np.uint8))
        if i < n:
            _save(out / "labelsTr" / f"{cid}.{ext}", seg)
    names = {"0": "T2", "1": "ADC"} if channels > 1 else {"0": "T2"}
    spec = {"channel_names": {k: v for k, v in names.items() if int(k) < channels},
            "numTraining": n, "file_ending": file_ending, "name": out.name}
    if regions:
        spec["labels"] = {"background": 0, "objects": [1, 2, 3], "round_or_square": [1, 2], "round": 1}
        spec["regions_class_order"] = [3, 2, 1]
    else:
        spec["labels"] = {"background": 0, **{c: k + 1 for k, c in enumerate(CLASSES)}}
    write_text_atomic(out / "dataset.json", json.dumps(spec, indent=2) + "\n")  # key order matters (regions)
    folds = min(int(folds), n) if folds else None  # no empty folds when n < folds
    if folds:
        train = ids[:n]
        perm = [train[j] for j in np.random.default_rng(seed).permutation(n)]
        parts = [sorted(perm[k::folds]) for k in range(folds)]
        write_json_atomic(out / "splits_final.json",
                          [{"train": sorted(c for j, p in enumerate(parts) if j != k for c in p), "val": parts[k]}
                           for k in range(folds)])
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.nnunet", "seed": seed, "n": n, "n_test": n_test,
                                     "size": list(size), "file_ending": file_ending, "regions": regions})
    return out
