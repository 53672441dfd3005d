"""Step 1 of the flow: a BraTS-format case -> tumour maps (WT, TC, ET) on the case grid.

A case is a folder ``<case_id>/`` holding ``<case_id>_{flair,t1,t1ce,t2}.nii.gz`` and, for labelled
cases, ``<case_id>_seg.nii.gz`` (the BraTS 2020 layout; ``.nii`` works too). The tumour comes from an
existing segmentation file or from a trained medseg run (its saved config and checkpoint).

The network sees what it saw in training (the conventions of ``medseg.data.formats.brats``): the
modalities of the run's ``data.reader.modalities`` stacked as ``(C, X, Y, Z)`` in the NIfTI array
order, then the run's own ``data.preprocess`` steps, with ``roi`` = voxels where any modality is
non-zero (the skull-stripped brain). A crop recorded in ``meta["crop_bbox"]`` is pasted back and any
other change of grid is undone by nearest-neighbour resizing, so the tumour maps lie on the case grid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.apps.clinical.errors import ClinicalConfigError, ClinicalDataError, ClinicalError
from medseg.apps.clinical.localise import regions_from_labels
from medseg.apps.clinical.nifti import read_nifti

log = logging.getLogger(__name__)

MODALITIES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")


def case_file(case_dir: Path, suffix: str) -> Path | None:
    """``<case_dir>/<case_id>_<suffix>.nii[.gz]`` (or the one file ending ``_<suffix>.nii[.gz]``)."""
    for ext in (".nii.gz", ".nii"):
        p = case_dir / f"{case_dir.name}_{suffix}{ext}"
        if p.is_file():
            return p
    found = sorted(case_dir.glob(f"*_{suffix}.nii*"))
    return found[0] if len(found) == 1 else None


def read_case_images(case_dir: str | Path, modalities: Sequence[str] = MODALITIES
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Stack the modalities of a case -> ``(image (C, X, Y, Z) float32, affine)``.

    Raises :class:`ClinicalDataError` naming the case and every missing modality file, or a modality whose
    grid differs from the first.
    """
    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise ClinicalDataError(f"{case_dir}: case folder not found")
    found = {m: case_file(case_dir, m) for m in modalities}
    missing = [m for m, p in found.items() if p is None]
    if missing:
        expected = ", ".join(f"{case_dir.name}_{m}.nii.gz" for m in missing)
        raise ClinicalDataError(f"{case_dir}: case {case_dir.name} is missing modality {', '.join(missing)} "
                            f"(expected {expected}); the model needs all of {', '.join(modalities)}")
    paths = {m: p for m, p in found.items() if p is not None}  # all of them
    arrays: list[np.ndarray] = []
    affine: np.ndarray | None = None
    for m in modalities:
        data, aff, _ = read_nifti(paths[m], f"{m} image")
        if arrays and data.shape != arrays[0].shape:
            raise ClinicalDataError(f"{paths[m]}: shape {data.shape} differs from {paths[modalities[0]].name} "
                                f"{arrays[0].shape}")
        if affine is not None and not np.allclose(aff, affine, atol=1e-3):
            raise ClinicalDataError(f"{paths[m]}: affine differs from {paths[modalities[0]].name}; the modalities "
                                "must be co-registered on one grid")
        arrays.append(np.asarray(data, np.float32))
        affine = aff if affine is None else affine
    image = np.stack(arrays)
    if not np.isfinite(image).all():
        raise ClinicalDataError(f"{case_dir}: an image contains NaN or infinite values")
    assert affine is not None  # at least one modality was read
    return image, affine


def read_segmentation(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A BraTS label file -> ``({"WT", "TC", "ET"} boolean maps, affine)``."""
    data, affine, _ = read_nifti(path, "segmentation")
    try:
        return regions_from_labels(data), affine
    except ClinicalError as exc:
        raise ClinicalDataError(f"{path}: {exc}") from None


#: task and classes of the BraTS reader (medseg.data.formats.brats) per ``label_mode``
BRATS_LABEL_MODES = {"regions": ("multilabel", ("whole_tumour", "tumour_core", "enhancing_tumour")),
                     "labels": ("multiclass", ("necrotic_core", "oedema", "enhancing_tumour"))}


def _run_spec(run_cfg, in_channels: int, task: str | None, class_names: Sequence[str] | None):
    """What :func:`medseg.pipelines.build.build_module` needs from a datamodule, without loading data:
    the task and classes come from the run's reader config (``label_mode``) or the reader class."""
    from medseg.pipelines.build import DataInfo  # imports torch and Lightning: only when a model runs

    if task is None or class_names is None:
        reader = (run_cfg.get("data") or {}).get("reader") or {}
        if (mode := reader.get("label_mode")) in BRATS_LABEL_MODES:
            found_task, found_names = BRATS_LABEL_MODES[mode]
        elif target := reader.get("_target_"):
            from hydra.utils import get_class

            cls: Any = get_class(str(target))
            found_task, found_names = cls.task, cls.class_names
        else:
            raise ClinicalConfigError("the run's config has no data.reader to tell the model's classes")
        task, class_names = task or found_task, class_names or list(found_names)
    # spatial_dims: build_module passes it to models that take it (3D volumes here)
    return DataInfo(task=task, class_names=list(class_names), in_channels=in_channels, spatial_dims=3)


def _back_to_case_grid(fg: np.ndarray, meta: dict, shape: tuple[int, ...]) -> np.ndarray:
    """Undo preprocessing that changed the grid: paste a crop back (``meta["crop_bbox"]``, as written by
    ``CropToForeground``), then nearest-neighbour resize to ``shape`` if it still differs."""
    from medseg.data.preprocess import uncrop

    fg = uncrop(fg, meta)
    if fg.shape[1:] != tuple(shape):
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(fg.astype(np.float32))[None]
        fg = F.interpolate(t, size=tuple(shape), mode="nearest")[0].numpy() > 0.5
    return fg


def maps_from_prediction(fg: np.ndarray, task: str, class_names: Sequence[str]) -> dict[str, np.ndarray | None]:
    """Boolean foreground maps ``(K, ...)`` of a model -> ``{"WT", "TC", "ET"}``.

    * multi-label with classes named WT/TC/ET (any case; also "whole tumour", "tumour core",
      "enhancing tumour"): used directly;
    * multi-class with three classes: BraTS labels 1, 2, 4 in that order (NCR, ED, ET);
    * binary: the whole tumour only (TC and ET are ``None``).
    """
    names = [n.lower().replace("_", " ") for n in class_names]
    aliases = {"WT": ("wt", "whole tumour", "whole tumor", "whole"), "TC": ("tc", "tumour core", "tumor core", "core"),
               "ET": ("et", "enhancing tumour", "enhancing tumor", "enhancing")}
    if task == "binary":
        return {"WT": fg[0].astype(bool), "TC": None, "ET": None}
    if task == "multilabel":
        out: dict[str, np.ndarray | None] = {}
        for key, alias in aliases.items():
            idx = next((i for i, n in enumerate(names) if n in alias), None)
            out[key] = None if idx is None else fg[idx].astype(bool)
        if out["WT"] is None:
            out["WT"] = np.asarray(fg.any(axis=0))
        return out
    if task == "multiclass" and fg.shape[0] == 3:
        labels = np.zeros(fg.shape[1:], np.int16)
        for k, value in enumerate((1, 2, 4)):
            labels[fg[k]] = value
        return dict(regions_from_labels(labels))
    raise ClinicalDataError(f"cannot turn a {task} model with classes {list(class_names)} into BraTS tumour regions")


def segment_with_run(run_dir: str | Path, case_dir: str | Path, ckpt: str = "best",
                     modalities: Sequence[str] = MODALITIES, task: str | None = None,
                     class_names: Sequence[str] | None = None, device: str = "auto"
                     ) -> tuple[dict[str, np.ndarray | None], np.ndarray]:
    """Segment a case with the checkpoint of a finished medseg run -> ``(tumour maps, affine)``.

    ``device``: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``...
    """
    import torch
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    from medseg.data.case import Case
    from medseg.data.preprocess import Compose
    from medseg.pipelines.build import build_module, load_weights
    from medseg.pipelines.eval import resolve_checkpoint

    run_dir = Path(run_dir).expanduser()
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ClinicalConfigError(f"{run_dir}: not a medseg run folder (run_dir=) (no .hydra/config.yaml)")
    run_cfg = OmegaConf.load(saved)
    if not isinstance(run_cfg, DictConfig):
        raise ClinicalConfigError(f"{saved}: not a run config (a mapping)")
    reader_cfg = (run_cfg.get("data") or {}).get("reader") or {}
    modalities = list(reader_cfg.get("modalities") or modalities)  # the run's channel order wins
    image, affine = read_case_images(case_dir, modalities)
    spec = _run_spec(run_cfg, image.shape[0], task, class_names)
    module = build_module(run_cfg, spec)
    path = resolve_checkpoint(run_dir, ckpt)
    try:
        load_weights(module, path)
    except RuntimeError as exc:
        raise ClinicalDataError(f"{path}: checkpoint does not fit the run's model with {image.shape[0]} input "
                            f"channels ({str(exc).splitlines()[0]})") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module.eval().to(device)
    steps = instantiate(run_cfg.data.get("preprocess") or [], _convert_="all") if run_cfg.get("data") else []
    case = Compose(list(steps))(Case(Path(case_dir).name, image, roi=(image != 0).any(axis=0),
                                     spacing=tuple(float(z) for z in np.sqrt((affine[:3, :3] ** 2).sum(0))),
                                     meta={"affine": affine, "modalities": modalities}))
    x = torch.from_numpy(np.ascontiguousarray(case.image, np.float32))[None].to(device)
    with torch.no_grad():
        logits = module.predict_logits(x)
        fg = module.task.discretize(module.task.activation(logits))[0].cpu().numpy()
    fg = _back_to_case_grid(fg, case.meta, image.shape[1:])
    log.info("segmented case with %s on %s (%s, classes %s)", path.name, device, spec.task, spec.class_names)
    return maps_from_prediction(fg, spec.task, spec.class_names), affine
