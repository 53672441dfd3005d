"""Predict with a trained run on a split of its dataset or on a folder of images / volumes.

Outputs under the output folder: ``masks/`` (PNG in 2D, NIfTI with the source affine in 3D), or with
``writer=nnunet`` ``nnunet/<case><file_ending>`` label maps in nnU-Net's layout (the dataset's label
values, region order, source grid) for ``nnUNetv2_evaluate_simple``,
optionally ``probs/`` (per-class probabilities) and ``submission.csv`` (``image_name,class,rle``,
row-major RLE: see :mod:`medseg.inference.rle`), and ``predictions.csv`` listing what was written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, open_dict

from medseg.data.case import Case
from medseg.data.preprocess import Compose
from medseg.errors import ConfigError, DataError
from medseg.evaluation import Decide, TableBuilder, model_probs, threshold_decision
from medseg.inference.postprocess import describe_rules
from medseg.inference.rle import write_rle_csv
from medseg.inference.selected import Selection
from medseg.inference.writers import (
    write_nifti_labels,
    write_nnunet_prediction,
    write_png_mask,
    write_probabilities,
)
from medseg.metrics import metrics_from_config
from medseg.pipelines.build import DataInfo, build_datamodule, build_module, load_weights
from medseg.pipelines.eval import load_run_config, resolve_checkpoint
from medseg.tasks import Task
from medseg.utils.io import read_image, save_with

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")


def read_input(path: Path, channels: int) -> Case:
    """One image (2D, scaled to [0, 1] like the readers do) or NIfTI volume (affine and spacing kept)."""
    name = path.name
    if name.endswith((".nii", ".nii.gz")):
        from medseg.data.formats.nifti import load_nifti

        data, affine, spacing = load_nifti(path)
        data = data.astype(np.float32, copy=False)
        image = data[None] if data.ndim == 3 else np.moveaxis(data, -1, 0)
        case_id = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else path.stem
        return Case(case_id, np.ascontiguousarray(image), spacing=spacing,
                    meta={"affine": affine, "source": str(path)}).validate(str(path))
    from medseg.data.formats.files import DICOM, ITK, is_dicom_series, read_array, split_ext

    ext = split_ext(path)[1]
    if ext in ITK or ext in DICOM or is_dicom_series(path):  # .mha/.nrrd, DICOM files and series folders
        data, meta = read_array(path)
        image = np.ascontiguousarray(data[None], dtype=np.float32)
        if image.shape[0] != channels:
            raise DataError(f"{path}: {image.shape[0]} channels, the model takes {channels}")
        return Case(split_ext(path)[0] or path.name, image, spacing=meta.get("spacing") if data.ndim == 3 else None,
                    meta={"source": str(path), **({"affine": meta["affine"]} if "affine" in meta else {})}
                    ).validate(str(path))
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
    from medseg.data.formats.files import is_dicom_series, split_ext

    entries = sorted(folder.iterdir())
    files = [p for p in entries if (p.is_file() and split_ext(p)[0]) or is_dicom_series(p)]
    if not files:
        seen = sorted({p.suffix.lower() or p.name for p in entries})[:8]
        raise DataError(f"{folder}: no images (png, jpg, tif, bmp, gif, ppm, pgm ...), volumes (nii.gz, mha, nrrd) "
                        f"or DICOM files / series folders found (saw {len(entries)} entries: {seen}); "
                        "set input_dir to the folder of images")
    return [preprocess(read_input(p, channels)) for p in files]


def _reader_info(run_cfg) -> DataInfo:
    """Task, class names, image channels and spatial dims of the run's reader (what ``build_module``
    reads from a datamodule): instantiated on the data root when it exists (readers such as BraTS
    set them from options), else the reader class's defaults."""
    reader_cls = get_class(run_cfg.data.reader._target_)
    root = Path(str(run_cfg.data.root)).expanduser()
    reader: Any = reader_cls
    if root.exists():
        reader = instantiate(run_cfg.data.reader)(root=str(root))
    else:
        log.warning("%s not found: taking the task from %s's defaults", root, reader_cls.__name__)
    return DataInfo(task=reader.task, class_names=list(reader.class_names),
                    in_channels=int(getattr(reader, "in_channels", 1)),
                    spatial_dims=int(getattr(reader, "spatial_dims", 2)),
                    reader=reader if root.exists() else None)


def write_uncertainty(out_dir: Path, case_id: str, task, probs, model_probs_list) -> Path:
    """``<case_id>.npz``: predictive entropy (nats, float16) and, with several models (folds and/or
    members), their disagreement: the largest per-class standard deviation of their probabilities."""
    p = probs.float().clamp(1e-7, 1 - 1e-7)
    ent = -(p * p.log()).sum(0) if task.kind == "multiclass" else -(p * p.log() + (1 - p) * (-p).log1p()).sum(0)
    arrays = {"entropy": ent.numpy().astype(np.float16)}
    if len(model_probs_list) > 1:
        fg = slice(1, None) if task.kind == "multiclass" else slice(None)
        stack = torch.stack([m.float()[fg] for m in model_probs_list])
        arrays["disagreement"] = stack.std(0).amax(0).numpy().astype(np.float16)
    return save_with(Path(out_dir) / f"{case_id}.npz", lambda q: np.savez_compressed(q, **arrays))


def predict(cfg: DictConfig, out_dir: str | Path) -> pd.DataFrame:
    """Write predictions for ``cfg.input_dir`` (a folder) or ``cfg.split`` of the run's dataset.

    ``cfg.run_dir`` is a run folder or a k-fold folder; for the latter the prediction is the mean of
    the folds' probabilities (the fold ensemble). With ``cfg.selection`` (a ``selection.json`` from
    ``medseg-select``) the members, weights, temperature, thresholds and postprocessing come from it
    (:class:`medseg.inference.selected.Selection`). ``cfg.package`` instead: an exported package
    (:func:`predict_package`). A labelled split is also scored (:func:`_scorer`)."""
    out_dir = Path(out_dir)
    _check_rle_order(cfg)
    if cfg.get("package"):
        if cfg.get("run_dir") or cfg.get("selection"):
            raise ConfigError("give run_dir=, selection= or package=, not several")
        return predict_package(cfg, out_dir)
    selection = Selection.load(cfg.selection) if cfg.get("selection") else None
    if selection is None and not cfg.get("run_dir"):
        raise ConfigError("run_dir: missing; give a run folder, a k-fold folder, selection=<selection.json> "
                          "or package=<exported package>")
    m = _load_models(cfg, selection)
    writer = str(cfg.get("writer") or "default")
    if writer not in ("default", "nnunet"):
        raise ConfigError(f"writer={writer!r}: use default (PNG / NIfTI masks) or nnunet (nnU-Net's layout)")
    rows, rle_rows = [], []
    scorer = _scorer(cfg, m.task, m.threshold)
    for case in m.cases:
        folds = [[f(case) for f in fs] for fs in m.member_fns]
        probs = m.probs_fn(folds)
        pred = m.decide(probs)
        if scorer is not None and case.mask is not None:
            scorer.add("predict", case, probs, pred)
        written = _write_case(cfg, out_dir, writer, m, case, pred, probs, folds)
        if cfg.get("rle"):
            image_name = Path(case.meta.get("source", case.case_id)).name
            rle_rows += [(image_name, name, pred[k].numpy()) for k, name in enumerate(m.task.class_names)]
        rows.append(_row(case.case_id, written, out_dir, m.task, pred))
    if scorer is not None and scorer.rows:
        _save_scores(scorer, out_dir, m.run_dirs, m.ckpts, cfg, selection)
    ckpt = m.ckpts[0] if len(m.ckpts) == 1 else Path(f"{len(m.ckpts)} checkpoints")
    return _write_table(cfg, out_dir, rows, rle_rows, ckpt.name)


def _load_models(cfg: DictConfig, selection: Selection | None) -> SimpleNamespace:
    """The cases to predict and the networks: per member its fold runs (or the run itself), their
    probability functions, how members combine (``probs_fn``) and decide (``decide``)."""
    from medseg.inference.ensemble import combine
    from medseg.pipelines.ensemble import fold_dirs

    member_dirs = selection.members if selection is not None else [Path(cfg.run_dir).expanduser()]
    groups = [fold_dirs(m) or [m] for m in member_dirs]  # per member: its fold runs, or the run itself
    run_dirs = [rd for g in groups for rd in g]
    run_cfgs = [load_run_config(rd, cfg.get("overrides")) for rd in run_dirs]
    info, cases = _input_cases(cfg, run_cfgs[0])
    modules, ckpts = [], []
    for rd, rc in zip(run_dirs, run_cfgs):
        module = build_module(rc, info)
        ckpts.append(resolve_checkpoint(rd, str(cfg.ckpt)))
        load_weights(module, ckpts[-1])
        modules.append(module)
        if selection is not None:
            selection.check_task(module.task, str(rd))
    task = modules[0].task
    threshold = task.threshold if cfg.get("threshold") is None else float(cfg.threshold)
    fns = iter([model_probs(m, cfg.get("tta") or False) for m in modules])
    member_fns = [[next(fns) for _ in g] for g in groups]

    def member_probs(folds: list[list]) -> list:
        return [fp[0] if len(fp) == 1 else combine(fp) for fp in folds]

    decide: Decide
    if selection is not None:
        probs_fn = lambda folds: selection.combine(member_probs(folds))  # noqa: E731
        decide = selection.decide
    else:
        probs_fn = lambda folds: member_probs(folds)[0]  # noqa: E731
        decide = threshold_decision(task, threshold)
    return SimpleNamespace(task=task, threshold=threshold, cases=cases, info=info, run_dirs=run_dirs, ckpts=ckpts,
                           member_fns=member_fns, probs_fn=probs_fn, decide=decide)


def _input_cases(cfg: DictConfig, run_cfg: DictConfig) -> tuple:
    """``(reader info or datamodule, cases)``: the images of ``cfg.input_dir``, else ``cfg.split``."""
    if cfg.get("input_dir"):
        preprocess = Compose(instantiate(run_cfg.data.get("preprocess")) or [])
        info = _reader_info(run_cfg)
        cases = folder_cases(cfg.input_dir, info.in_channels, preprocess)
        info.in_channels = int(cases[0].image.shape[0])  # after preprocessing (e.g. RGB -> grey)
        return info, cases
    with open_dict(run_cfg):
        run_cfg.data.fold = None  # the test split does not depend on the fold
    dm = build_datamodule(run_cfg)
    return dm, dm.cases[cfg.split]


def _write_case(cfg: DictConfig, out_dir: Path, writer: str, m: SimpleNamespace, case: Case, pred, probs,
                folds: list[list]) -> list[Path]:
    """The mask file(s) of one case, and its probabilities / uncertainty when asked for."""
    task = m.task
    reader = getattr(m.info, "reader", None)
    if writer == "nnunet":
        labels = getattr(reader, "labels", None)
        label_values = labels if hasattr(labels, "to_labels") else None
        ending = cfg.get("file_ending") or case.meta.get("file_ending") or getattr(reader, "file_ending", None) \
            or (".nii.gz" if pred.ndim == 4 else ".png")
        written = [write_nnunet_prediction(out_dir / "nnunet", case, task, pred, str(ending), label_values)]
    elif pred.ndim == 4:
        written = [write_nifti_labels(out_dir / "masks", case, task, pred, cfg.get("nifti_label_values"))]
    else:
        written = write_png_mask(out_dir / "masks", case.case_id, task, pred)
    if cfg.get("save_probs"):
        written.append(write_probabilities(out_dir / "probs", case, probs))
    if cfg.get("save_uncertainty"):
        written.append(write_uncertainty(out_dir / "uncertainty", case.case_id, task, probs,
                                         [p for fp in folds for p in fp]))
    return written


def _scorer(cfg: DictConfig, task: Task, threshold: float) -> TableBuilder | None:
    """Predicting a split of the run's dataset (``score: true``): its labelled cases are also scored,
    through the same :func:`medseg.evaluation.score_case` as every other entry point, on the masks
    written (with a selection: its per-class thresholds and post-processing, so a held-out split
    measures the pipeline ``medseg-select`` chose on out-of-fold predictions)."""
    if cfg.get("input_dir") or not cfg.get("score", True):
        return None
    return TableBuilder(task, threshold, metrics_from_config(cfg), split=str(cfg.split))


def _save_scores(scorer: TableBuilder, out_dir: Path, run_dirs: list[Path], ckpts: list[Path], cfg,
                 selection: Selection | None = None) -> None:
    """``per_image.csv``, ``per_class.csv``, ``evaluation.json`` of the labelled predicted cases."""
    table = scorer.tables()["predict"]
    table.source = {"runs": sorted(str(Path(r).expanduser().resolve()) for r in run_dirs),
                    "checkpoints": sorted(p.name for p in ckpts),
                    **({"tta": cfg.tta if isinstance(cfg.tta, bool) else dict(cfg.tta)} if cfg.get("tta") else {}),
                    **({"combine": "mean"} if len(run_dirs) > 1 and selection is None else {}),
                    **({"selection": str(Path(cfg.selection).expanduser().resolve())} if selection else {})}
    if selection is not None:
        table.threshold = None  # per class, in the note
        table.per_image.attrs.pop("threshold", None)
        table.threshold_note = (f"The decisions of {cfg.selection}: member weights {selection.weights}, "
                                f"temperature {selection.temperature:g}, thresholds {selection.thresholds}, "
                                f"post-processing {describe_rules(selection.class_names, selection.rules)}.")
    table.save(out_dir)
    log.info("%d labelled case(s) scored: mean Dice %.4f (per_image.csv)", len(table.per_image),
             float(table.per_image["dice"].mean()))


def _row(case_id: str, written: list[Path], out_dir: Path, task, pred) -> dict:
    """One line of ``predictions.csv``: the files written and the predicted fraction of each class."""
    return {"case_id": case_id, "files": ";".join(str(p.relative_to(out_dir)) for p in written),
            **{f"fraction_{n}": float(pred[k].float().mean()) for k, n in enumerate(task.class_names)}}


def _check_rle_order(cfg: DictConfig) -> None:
    """Refuse a bad ``rle_order`` before any inference runs (it is used only at the very end)."""
    if cfg.get("rle") and str(cfg.get("rle_order", "C")) not in ("C", "F"):
        raise ConfigError(f"rle_order={cfg.rle_order!r}: use C (row-major) or F (column-major)")


def _write_table(cfg: DictConfig, out_dir: Path, rows: list[dict], rle_rows: list, source: str) -> pd.DataFrame:
    """``submission.csv`` (with ``rle=true``) and ``predictions.csv``, each written atomically."""
    if cfg.get("rle"):
        write_rle_csv(rle_rows, out_dir / "submission.csv", order="F" if str(cfg.get("rle_order", "C")) == "F" else "C")
    table = pd.DataFrame(rows).set_index("case_id")
    save_with(out_dir / "predictions.csv", lambda p: table.to_csv(p, float_format="%.6f"))
    log.info("%d predictions from %s written to %s", len(table), source, out_dir)
    return table


def predict_package_input(model, path: Path) -> tuple[Case, torch.Tensor, np.ndarray]:
    """One input (image, volume, or case folder of one NIfTI per modality) through a loaded package
    (:func:`medseg.export.package.load_package`): ``(preprocessed case, masks (K, ...) bool,
    probabilities)``. ``DataError`` naming the file when it cannot be read or does not fit."""
    from medseg.export.runner import InputError, read_case_folder
    from medseg.export.runner import read_input as read_package_input

    modalities = model.manifest["input"].get("modalities")
    try:
        raw = (read_case_folder(path, modalities) if path.is_dir()
               else read_package_input(path, int(model.manifest["input"]["channels"])))
        result = model.predict(raw["image"], raw["roi"], raw["meta"])
    except InputError as exc:
        raise DataError(str(exc)) from exc
    meta = dict(result["case"]["meta"])
    spacing = tuple(meta.pop("spacing")) if meta.get("spacing") else None
    case = Case(meta.pop("case_id"), result["case"]["image"], spacing=spacing, meta=meta)
    return case, torch.from_numpy(result["masks"]), result["probs"]


def predict_package(cfg: DictConfig, out_dir: Path) -> pd.DataFrame:
    """Predict ``cfg.input_dir`` with an exported package (``medseg-export``), verified first.

    The package's networks run through medseg's own copy of the standalone runner (the package's
    ``runner.py`` is never imported); the outputs are written exactly as for a run folder."""
    from medseg.export.package import load_package
    from medseg.export.runner import InputError, input_files

    if not cfg.get("input_dir"):
        raise ConfigError("package= predicts a folder: set input_dir=<folder of images or NIfTI volumes>")
    if cfg.get("tta") or cfg.get("threshold") is not None:
        raise ConfigError("package=: tta and threshold are fixed in the package (export it again to change them)")
    model = load_package(cfg.package, engine=cfg.get("engine"), threads=cfg.get("threads"))
    task = Task(model.task, model.classes)
    folder = Path(cfg.input_dir).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: input folder not found")
    modalities = model.manifest["input"].get("modalities")
    try:  # images, volumes, or case folders with one NIfTI per modality (BraTS)
        files = input_files([str(folder)], modalities)
    except InputError as exc:
        raise DataError(str(exc)) from exc
    rows, rle_rows = [], []
    values = cfg.get("nifti_label_values") or model.manifest.get("output", {}).get("nifti_label_values")
    for path in files:
        case, pred, probs = predict_package_input(model, path)
        if pred.ndim == 4:
            written = [write_nifti_labels(out_dir / "masks", case, task, pred, values)]
        else:
            written = write_png_mask(out_dir / "masks", case.case_id, task, pred)
        if cfg.get("save_probs"):
            written.append(write_probabilities(out_dir / "probs", case, torch.from_numpy(probs)))
        if cfg.get("rle"):
            rle_rows += [(path.name, name, pred[k].numpy()) for k, name in enumerate(task.class_names)]
        rows.append(_row(case.case_id, written, out_dir, task, pred))
    return _write_table(cfg, out_dir, rows, rle_rows, f"package {cfg.package}")
