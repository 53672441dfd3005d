"""medseg.data

The public names of the submodules are re-exported here and imported on first use
(``from medseg.data import ...``), so importing the package stays cheap.
"""

from typing import TYPE_CHECKING

from medseg._lazy import lazy_exports

_EXPORTS = {
    "Augment2D": "medseg.data.augment",
    "Augment3D": "medseg.data.augment",
    "RandomFlip": "medseg.data.augment",
    "CachedCases": "medseg.data.cache",
    "CaseCache": "medseg.data.cache",
    "fingerprint": "medseg.data.cache",
    "Case": "medseg.data.case",
    "ResumableLoader": "medseg.data.datamodule",
    "SegmentationDataModule": "medseg.data.datamodule",
    "FullImageDataset": "medseg.data.datasets",
    "PatchDataset": "medseg.data.datasets",
    "ResizeDataset": "medseg.data.datasets",
    "CLAHE": "medseg.data.preprocess",
    "ClipIntensity": "medseg.data.preprocess",
    "Compose": "medseg.data.preprocess",
    "CropToForeground": "medseg.data.preprocess",
    "FieldOfView": "medseg.data.preprocess",
    "Gamma": "medseg.data.preprocess",
    "GreenWeightedGray": "medseg.data.preprocess",
    "MinMax": "medseg.data.preprocess",
    "Resample": "medseg.data.preprocess",
    "Resize": "medseg.data.preprocess",
    "ZScore": "medseg.data.preprocess",
    "fov_from_image": "medseg.data.preprocess",
    "resize_nearest": "medseg.data.preprocess",
    "uncrop": "medseg.data.preprocess",
    "EpochSampler": "medseg.data.samplers",
    "eval_sampler": "medseg.data.samplers",
    "item_seed": "medseg.data.samplers",
    "canonical_split": "medseg.data.splits",
    "find_split": "medseg.data.splits",
    "grouped_holdout": "medseg.data.splits",
    "grouped_kfold": "medseg.data.splits",
    "load_split_spec": "medseg.data.splits",
    "make_splits": "medseg.data.splits",
    "name_resolver": "medseg.data.splits",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "Augment2D",
    "Augment3D",
    "CLAHE",
    "CachedCases",
    "Case",
    "CaseCache",
    "ClipIntensity",
    "Compose",
    "CropToForeground",
    "EpochSampler",
    "FieldOfView",
    "FullImageDataset",
    "Gamma",
    "GreenWeightedGray",
    "MinMax",
    "PatchDataset",
    "RandomFlip",
    "Resample",
    "Resize",
    "ResizeDataset",
    "ResumableLoader",
    "SegmentationDataModule",
    "ZScore",
    "canonical_split",
    "eval_sampler",
    "find_split",
    "fingerprint",
    "fov_from_image",
    "grouped_holdout",
    "grouped_kfold",
    "item_seed",
    "load_split_spec",
    "make_splits",
    "name_resolver",
    "resize_nearest",
    "uncrop",
]

if TYPE_CHECKING:  # the same names for type checkers
    from medseg.data.augment import (
        Augment2D,
        Augment3D,
        RandomFlip,
    )
    from medseg.data.cache import (
        CachedCases,
        CaseCache,
        fingerprint,
    )
    from medseg.data.case import (
        Case,
    )
    from medseg.data.datamodule import (
        ResumableLoader,
        SegmentationDataModule,
    )
    from medseg.data.datasets import (
        FullImageDataset,
        PatchDataset,
        ResizeDataset,
    )
    from medseg.data.preprocess import (
        CLAHE,
        ClipIntensity,
        Compose,
        CropToForeground,
        FieldOfView,
        Gamma,
        GreenWeightedGray,
        MinMax,
        Resample,
        Resize,
        ZScore,
        fov_from_image,
        resize_nearest,
        uncrop,
    )
    from medseg.data.samplers import (
        EpochSampler,
        eval_sampler,
        item_seed,
    )
    from medseg.data.splits import (
        canonical_split,
        find_split,
        grouped_holdout,
        grouped_kfold,
        load_split_spec,
        make_splits,
        name_resolver,
    )
