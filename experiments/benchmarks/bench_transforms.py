"""medseg's own transforms against their MONAI equivalents: what differs and what it costs.

Run: ``PYTHONPATH=. OMP_NUM_THREADS=1 python experiments/benchmarks/bench_transforms.py``. Times are
ratios measured in the same run (a shared machine: absolute figures are not quiet-machine figures).

* RandomFlip (each axis with probability p, image/mask/roi together) vs a MONAI ``Compose`` of
  ``RandFlipd`` per axis: same flips, time ratio.
* Resize (torch bilinear, antialiased in 2D) vs ``monai.transforms.Resize(anti_aliasing=True)``:
  largest pixel difference when shrinking a 2D image (MONAI pre-filters with a Gaussian instead).
* Gamma (``clip(x, 0, 1) ** g``) vs ``monai.transforms.AdjustContrast(g)`` (rescales by the image's
  own min and range first): largest pixel difference on an image in [0.1, 0.9].
* Compose vs ``monai.transforms.Compose``: the exception a failing step raises.
* CropToForeground's box (MONAI ``CropForeground.compute_bounding_box``) vs a hand-written one.
"""

from __future__ import annotations

import timeit

import numpy as np
import torch


def _flip_ratio(shape: tuple[int, ...]) -> float:
    from monai.transforms import Compose, RandFlipd

    from medseg.data.augment import RandomFlip

    img = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    mask, roi = (img[0] > 0.5).astype(np.uint8), img[0] > 0.1
    ours = RandomFlip(p=0.5, seed=0)
    c = Compose([RandFlipd(keys=["image", "mask", "roi"], prob=0.5, spatial_axis=ax, allow_missing_keys=True)
                 for ax in range(len(shape))])
    c.set_random_state(0)

    def theirs() -> None:
        out = c({"image": img, "mask": mask[None], "roi": roi[None]})
        [np.ascontiguousarray(out[k].numpy()) for k in ("image", "mask", "roi")]

    n = 500 if len(shape) == 2 else 10
    t_o = min(timeit.repeat(lambda: ours(img, mask, roi), number=n, repeat=3)) / n
    t_m = min(timeit.repeat(theirs, number=n, repeat=3)) / n
    return t_m / t_o


def flips() -> None:
    for shape in [(64, 64), (96, 96, 96)]:
        print(f"RandomFlip {shape}: MONAI RandFlipd chain / medseg = {_flip_ratio(shape):.1f}x")


def resize() -> None:
    from monai.transforms import Resize as MResize

    from medseg.data.case import Case
    from medseg.data.preprocess import Resize

    img = np.random.default_rng(1).random((1, 584, 565), dtype=np.float32)
    ours = Resize((146, 141))(Case("c", img)).image
    theirs = MResize((146, 141), mode="bilinear", anti_aliasing=True)(torch.from_numpy(img)).numpy()
    print(f"Resize 584x565 -> 146x141: max |medseg - MONAI| = {np.abs(ours - theirs).max():.3f}")


def gamma() -> None:
    from monai.transforms import AdjustContrast

    from medseg.data.case import Case
    from medseg.data.preprocess import Gamma

    img = 0.1 + 0.8 * np.random.default_rng(2).random((1, 64, 64), dtype=np.float32)
    ours = Gamma(1.2)(Case("c", img)).image
    theirs = np.asarray(AdjustContrast(1.2)(img))
    print(f"Gamma 1.2 on [0.1, 0.9]: max |medseg - MONAI AdjustContrast| = {np.abs(ours - theirs).max():.3f}")


def compose() -> None:
    from monai.transforms import Compose as MCompose

    from medseg.data.preprocess import Compose
    from medseg.errors import DataError

    def bad(case: object) -> object:
        raise DataError("case.nii.gz: unreadable")

    for name, c in (("medseg", Compose([bad])), ("MONAI", MCompose([bad]))):
        try:
            c(None)
        except Exception as exc:  # noqa: BLE001 - shown, not handled
            print(f"Compose ({name}): a DataError in a step surfaces as {type(exc).__name__}")


if __name__ == "__main__":
    flips()
    resize()
    gamma()
    compose()
