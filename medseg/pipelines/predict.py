"""Predict with a trained run on a split of its dataset or on a folder of images / volumes.

Outputs under the output folder: ``masks/`` (PNG in 2D, NIfTI with the source affine in 3D),
optionally ``probs/`` (per-class probabilities) and ``submission.csv`` (``image_name,class,rle``,
row-major RLE: see :mod:`medseg.inference.rle`), and ``predictions.csv`` listing what was written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, open_dict

from medseg.data.case import Case
from medseg.data.preprocess import Compose
from medseg.errors import DataError
from medseg.inference.rle import write_rle_csv
from medseg.inference.writers import write_nifti_labels, write_png_mask, write_probabilities
from medseg.pipelines.build import build_datamodule, build_module, load_weights
from medseg.pipelines.eval import load_run_config, resolve_checkpoint
from medseg.pipelines.evaluate import model_probs
from medseg.utils.io import read_image, save_with

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")


def read_input(path: Path, channels: int) -> Case:
    """One image (2D, scaled to [0, 1] like the readers do) or NIfTI volume (affine and spacing kept)."""
    name = path.name
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            img = nib.load(str(path))
            data = np.asarray(img.dataobj, dtype=np.float32)
        except Exception as exc:  # nibabel raises several types for broken files
            raise DataError(f"{path}: cannot read NIfTI ({exc})") from exc
        image = data[None] if data.ndim == 3 else np.moveaxis(data, -1, 0)
        case_id = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else path.stem
        return Case(case_id, np.ascontiguousarray(image), spacing=tuple(float(z) for z in img.header.get_zooms()[:3]),
                    meta={"affine": img.affine, "source": str(path)}).validate(str(path))
    raw = read_image(path, mode="RGB" if channels == 3 else "L" if channels == 1 else None)
    scale = 65535.0 if raw.dtype == np.uint16 else 255.0 if raw.dtype == np.uint8 else 1.0
    image = (raw[None] if raw.ndim == 2 else raw.transpose(2, 0, 1)).astype(np.float32) / scale
    if image.shape[0] != channels:
        raise DataError(f"{path}: {image.shape[0]} channels, the model takes {channels}")
    return Case(path.stem, np.ascontiguousarray(image), meta={"source": str(path)}).validate(str(path))


def folder_cases(folder: str | Path, channels: int, preprocess) -> list[Case]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: input folder not found")
    files = sorted(p for p in folder.iterdir() if p.name.lower().endswith((*IMAGE_SUFFIXES, ".nii", ".nii.gz")))
    if not files:
        raise DataError(f"{folder}: no images (png, jpg, tif, bmp, gif) or NIfTI volumes found")
    return [preprocess(read_input(p, channels)) for p in files]


def _reader_info(run_cfg) -> SimpleNamespace:
    """Task, class names, image channels and spatial dims of the run's reader (what ``build_module``
    reads from a datamodule): instantiated on the data root when it exists (readers such as BraTS
    set them from options), else the reader class's defaults."""
    reader_cls = get_class(run_cfg.data.reader._target_)
    root = Path(str(run_cfg.data.root)).expanduser()
    reader = reader_cls
    if root.exists():
        reader = instantiate(run_cfg.data.reader)(root=str(root))
    else:
        log.warning("%s not found: taking the task from %s's defaults", root, reader_cls.__name__)
    return SimpleNamespace(task=reader.task, class_names=list(reader.class_names),
                           in_channels=int(getattr(reader, "in_channels", 1)),
                           spatial_dims=int(getattr(reader, "spatial_dims", 2)))


def predict(cfg: DictConfig, out_dir: str | Path) -> pd.DataFrame:
    """Write predictions for ``cfg.input_dir`` (a folder) or ``cfg.split`` of the run's dataset.

    ``cfg.run_dir`` is a run folder or a k-fold folder; for the latter the prediction is the mean of
    the folds' probabilities (the fold ensemble)."""
    from medseg.inference.ensemble import combine
    from medseg.pipelines.ensemble import fold_dirs

    out_dir = Path(out_dir)
    run_dir = Path(cfg.run_dir).expanduser()
    run_dirs = fold_dirs(run_dir) or [run_dir]
    run_cfgs = [load_run_config(rd, cfg.get("overrides")) for rd in run_dirs]
    run_cfg = run_cfgs[0]
    if cfg.get("input_dir"):
        preprocess = Compose(instantiate(run_cfg.data.get("preprocess")) or [])
        info = _reader_info(run_cfg)
        cases = folder_cases(cfg.input_dir, info.in_channels, preprocess)
        info.in_channels = int(cases[0].image.shape[0])  # after preprocessing (e.g. RGB -> grey)
    else:
        with open_dict(run_cfg):
            run_cfg.data.fold = None  # the test split does not depend on the fold
        info = build_datamodule(run_cfg)
        cases = info.cases[cfg.split]
    modules, ckpts = [], []
    for rd, rc in zip(run_dirs, run_cfgs):
        module = build_module(rc, info)
        ckpts.append(resolve_checkpoint(rd, str(cfg.ckpt)))
        load_weights(module, ckpts[-1])
        modules.append(module)
    task = modules[0].task
    threshold = task.threshold if cfg.get("threshold") is None else float(cfg.threshold)
    fns = [model_probs(m, cfg.get("tta") or False) for m in modules]
    probs_fn = fns[0] if len(fns) == 1 else (lambda case: combine([f(case) for f in fns]))
    ckpt = ckpts[0] if len(ckpts) == 1 else Path(f"{len(ckpts)} fold checkpoints")
    rows, rle_rows = [], []
    for case in cases:
        probs = probs_fn(case)
        pred = task.discretize(probs[None], threshold)[0]
        if pred.ndim == 4:
            written = [write_nifti_labels(out_dir / "masks", case, task, pred, cfg.get("nifti_label_values"))]
        else:
            written = write_png_mask(out_dir / "masks", case.case_id, task, pred)
        if cfg.get("save_probs"):
            written.append(write_probabilities(out_dir / "probs", case, probs))
        if cfg.get("rle"):
            image_name = Path(case.meta.get("source", case.case_id)).name
            rle_rows += [(image_name, name, pred[k].numpy()) for k, name in enumerate(task.class_names)]
        rows.append({"case_id": case.case_id, "files": ";".join(str(p.relative_to(out_dir)) for p in written),
                     **{f"fraction_{n}": float(pred[k].float().mean()) for k, n in enumerate(task.class_names)}})
    if cfg.get("rle"):
        write_rle_csv(rle_rows, out_dir / "submission.csv", order=cfg.get("rle_order", "C"))
    table = pd.DataFrame(rows).set_index("case_id")
    save_with(out_dir / "predictions.csv", lambda p: table.to_csv(p, float_format="%.6f"))
    log.info("%d predictions from %s written to %s", len(table), ckpt.name, out_dir)
    return table
