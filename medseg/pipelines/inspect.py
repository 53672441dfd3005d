"""``medseg-inspect``: read a dataset the way training would, without training, and say what was found.

The report lists the reader and task, cases per split (labelled or not), channels, image sizes,
spacings, label values, files that matched nothing, cases that fail to load and why, how the
train / val / test split would be made (or why it cannot), and the overrides that fix what it
saw (``data.train_split=train``, ``data.max_size=512``, ``loss=ce``...).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from medseg.errors import DataError, MedsegError
from medseg.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def _label_values(mask: np.ndarray | None, task: str) -> list[int] | list[float] | None:
    if mask is None:
        return None
    if task == "multilabel":  # fraction of pixels per channel
        return [round(float(m.mean()), 4) for m in mask]
    return sorted(int(v) for v in np.unique(mask))


def inspect_dataset(cfg: DictConfig, max_cases: int | None = 20) -> dict[str, Any]:
    """Inspect ``cfg.data`` -> a JSON-able report (see module docstring)."""
    from hydra.errors import InstantiationException

    try:
        dm = instantiate(cfg.data, _convert_="partial")
        dm.prepare_data()
        reader = dm.reader_factory(root=str(dm.root))
    except InstantiationException as exc:  # Hydra wraps the config / data error: show that one
        if isinstance(exc.__cause__, MedsegError):
            raise exc.__cause__ from None
        raise
    report: dict[str, Any] = {
        "root": str(dm.root), "reader": f"{type(reader).__module__}.{type(reader).__name__}",
        "task": reader.task, "classes": list(reader.class_names), "in_channels": int(reader.in_channels),
        "spatial_dims": int(reader.spatial_dims), "splits": {}, "failures": [], "suggestions": [],
    }
    for attr in ("channel_names", "file_ending", "unmatched", "skipped", "incomplete", "splits_file"):
        value = getattr(reader, attr, None)
        if value:
            report[attr] = value
    if hasattr(reader, "schemes"):
        report["naming"] = {str(k): v for k, v in reader.schemes.items()}
    shapes: list[tuple[int, ...]] = []
    spacings: list[tuple[float, ...]] = []
    channels: Counter = Counter()
    for split in reader.available_splits():
        ids = reader.list_cases(split)
        info: dict[str, Any] = {"cases": len(ids), "labelled": bool(reader.has_labels(split)), "examples": ids[:3]}
        values: Counter = Counter()
        for cid in ids[: max_cases or len(ids)]:
            try:
                case = reader.load_case(cid)
            except DataError as exc:
                report["failures"].append({"split": split, "case": cid, "error": str(exc)})
                continue
            shapes.append(case.spatial_shape)
            channels[int(case.image.shape[0])] += 1
            if case.spacing is not None:
                spacings.append(tuple(round(float(s), 4) for s in case.spacing))
            lv = _label_values(case.mask, reader.task)
            if lv is not None and reader.task != "multilabel":
                values.update(lv)
            if case.meta.get("background_rule"):
                info.setdefault("background_rules", Counter())[case.meta["background_rule"].split(" (")[0]] += 1
        if values:
            info["label_values"] = sorted(values)
        if "background_rules" in info:
            info["background_rules"] = dict(info["background_rules"])
        report["splits"][split] = info
    if shapes:
        arr = np.asarray(shapes)
        report["size"] = {"min": arr.min(0).tolist(), "max": arr.max(0).tolist(), "distinct": len(set(shapes))}
    if spacings:
        sp = np.asarray(spacings)
        report["spacing"] = {"min": sp.min(0).tolist(), "max": sp.max(0).tolist(),
                             "median": np.median(sp, 0).round(4).tolist()}
    report["channels_seen"] = dict(channels)
    dm.reader = reader
    try:
        report["would_split"] = {k: len(v) for k, v in dm._make_splits().items()}
    except MedsegError as exc:
        report["would_split"] = None
        report["split_error"] = str(exc)
    report["suggestions"] = suggest(cfg, report, reader)
    return report


def suggest(cfg: DictConfig, report: dict[str, Any], reader: object = None) -> list[str]:
    """Overrides that fix what the report saw."""
    out: list[str] = []
    data = cfg.data
    splits = report["splits"]
    from medseg.data.splits import find_split

    if find_split(data.get("train_split"), list(splits)) is None:
        labelled = [s for s, i in splits.items() if i["labelled"]] or list(splits)
        out.append(f"data.train_split={labelled[0]}   # '{data.get('train_split')}' is not a split here")
    if report.get("split_error"):
        out.append("data.splits={train: [...], val: [...], test: [...]}   # or a splits file (docs/datasets.md)")
    patch = list(data.get("patch_size") or [])
    dims = report["spatial_dims"]
    if patch and len(patch) != dims:
        side = 64 if dims == 3 else 128
        out.append(f"data.patch_size=[{','.join([str(side)] * dims)}]   # a {dims}D dataset")
    elif patch and "size" in report and any(p > s for p, s in zip(patch, report["size"]["min"])):
        fit = [min(p, s) for p, s in zip(patch, report["size"]["min"])]
        out.append(f"data.patch_size=[{','.join(map(str, fit))}]   # smaller than the smallest image")
    if "size" in report and max(report["size"]["max"]) > 1024 and dims == 2 and not data.get("max_size"):
        out.append("data.max_size=512   # images up to "
                   f"{max(report['size']['max'])} px: resample to a working size")
    if "spacing" in report and dims == 3 and not data.get("spacing"):
        med = report["spacing"]["median"]
        if max(med) / max(min(med), 1e-6) > 3:
            out.append(f"data.spacing=[{','.join(str(min(med)) for _ in med)}]   # anisotropic voxels {med}")
    if report["task"] == "multiclass":
        out.append("loss=ce   # multi-class masks (bce_dice, the default, is for binary / multi-label)")
    if report["in_channels"] == 3 and dims == 2 and not data.get("fov") and report["task"] == "binary":
        out.append("data.fov=auto data.baseline=global_threshold   # if these are fundus photos")
    unmatched = report.get("unmatched") or {}
    if any(unmatched.values()):
        guess = guess_mask_pattern(unmatched.get("images without masks", []), unmatched.get("masks without images", []))
        out.append(f"data.reader.mask_pattern='{guess}'   # guessed from the unmatched names" if guess else
                   "data.reader.mask_pattern='{stem}_mask.png'   # adapt to your mask names; unmatched files above")
    if report.get("skipped") and not any(splits.values()):
        out.append("data.reader.image_regex='(?P<stem>.+)\\.ext'   # files were skipped as not images")
    if report["failures"]:
        out.append("data.reader.strict=false   # skip the failing cases with a warning (or fix them)")
    return out


def guess_mask_pattern(images: list[str], masks: list[str]) -> str | None:
    """The ``mask_pattern`` that pairs most unmatched images with unmatched masks (``im0001.ppm`` +
    ``im0001.ah.pgm`` -> ``{stem}.ah.pgm``), or ``None``."""
    from medseg.data.formats.files import split_ext

    stems = sorted({split_ext(Path(i))[0] for i in images if split_ext(Path(i))[0]}, key=len, reverse=True)
    rests: Counter = Counter()
    for m in masks:
        name = Path(m).name
        stem = next((s for s in stems if name.startswith(s) and len(name) > len(s)), None)
        if stem is not None:
            rests[name[len(stem):]] += 1
    if not rests:
        return None
    rest, n = rests.most_common(1)[0]
    return "{stem}" + rest if n >= max(1, len(images) // 2) else None


def format_report(report: dict[str, Any]) -> str:
    lines = [f"dataset {report['root']}", f"  reader   {report['reader']}",
             f"  task     {report['task']}: {', '.join(report['classes'])}",
             f"  images   {report['spatial_dims']}D, {report['in_channels']} channel(s)"
             + (f" ({', '.join(report['channel_names'])})" if report.get("channel_names") else "")]
    if report.get("naming"):
        lines.append(f"  naming   {report['naming']}")
    if "size" in report:
        lines.append(f"  sizes    {report['size']['min']} .. {report['size']['max']} ({report['size']['distinct']} distinct)")
    if "spacing" in report:
        lines.append(f"  spacing  {report['spacing']['min']} .. {report['spacing']['max']} (median {report['spacing']['median']})")
    for split, info in report["splits"].items():
        extra = f", label values {info['label_values']}" if info.get("label_values") else ""
        bg = f", background: {info['background_rules']}" if info.get("background_rules") else ""
        lines.append(f"  split    {split}: {info['cases']} cases, {'labelled' if info['labelled'] else 'no labels'}"
                     f"{extra}{bg} (e.g. {', '.join(info['examples'])})")
    for kind, files in (report.get("unmatched") or {}).items():
        if files:
            lines.append(f"  {kind}: {len(files)}: {', '.join(Path(f).name for f in files[:8])}")
    if report.get("skipped"):
        lines.append(f"  skipped (not images): {len(report['skipped'])}: "
                     f"{', '.join(Path(f).name for f in report['skipped'][:8])}")
    if report.get("splits_file"):
        lines.append(f"  folds    from {report['splits_file']}")
    if report.get("would_split"):
        lines.append(f"  training would use {report['would_split']}")
    if report.get("split_error"):
        lines.append(f"  cannot split: {report['split_error']}")
    for f in report["failures"]:
        lines.append(f"  FAILS    {f['case']}: {f['error']}")
    if report["suggestions"]:
        lines.append("suggested overrides:")
        lines += [f"  {s}" for s in report["suggestions"]]
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def run_inspect(cfg: DictConfig, out_dir: str | Path) -> tuple[dict[str, Any], str]:
    report = inspect_dataset(cfg, cfg.get("max_cases"))
    write_json_atomic(Path(out_dir) / "inspect.json", report)
    return report, format_report(report)
