"""``medseg-export``: a run folder, a k-fold folder (the fold ensemble) or a ``medseg-select`` result
(its members' folds, member weights, temperature, thresholds, postprocessing) -> a deployable package.

See :mod:`medseg.export.package` for the layout and ``docs/export.md`` for how to use it. The
networks are exported once per member; the preprocessing, inference, TTA, decision rule and
postprocessing are written as plain values into ``package.json`` for the standalone runner.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np
from omegaconf import DictConfig, OmegaConf

from medseg.errors import CheckpointError, ConfigError, DataError
from medseg.export import card as card_mod
from medseg.export import runner
from medseg.export.networks import export_onnx, export_torchscript
from medseg.export.package import (
    copy_runner,
    decision_spec,
    inference_spec,
    preprocess_spec,
    tta_spec,
    verify,
    write_checksums,
)
from medseg.inference.inferers import net_size_divisor
from medseg.pipelines.build import build_module, load_weights
from medseg.pipelines.eval import load_run_config, resolve_checkpoint
from medseg.tasks import Task
from medseg.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript", "both")


def _network_channels(steps: list[dict], channels: int, spatial_dims: int) -> int:
    """Channels after the preprocessing steps (``GreenWeightedGray`` turns RGB into one)."""
    probe = np.random.default_rng(0).uniform(0.1, 1.0, (channels, *([16] * spatial_dims))).astype(np.float32)
    case = runner.preprocess({"image": probe, "roi": None, "meta": {}},
                             [s for s in steps if s["name"] not in ("Resize", "CLAHE")])
    return int(case["image"].shape[0])


def _reader_modalities(rc: DictConfig) -> list[str] | None:
    """The reader's channel modalities (BraTS: flair, t1, t1ce, t2), from the config or its default."""
    import inspect

    from hydra.utils import get_class

    given = rc.data.reader.get("modalities")
    if given is not None:
        return [str(m) for m in given]
    param = inspect.signature(get_class(str(rc.data.reader._target_))).parameters.get("modalities")
    return [str(m) for m in param.default] if param is not None and param.default is not inspect.Parameter.empty else None


def _checkpoint_in_channels(path: Path) -> int | None:
    """Input channels of the first convolution in a checkpoint's state dict (its input layer)."""
    from medseg.utils.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    state = state.get("state_dict", state)
    for value in state.values():
        if getattr(value, "ndim", 0) >= 4:
            return int(value.shape[1])
    return None


def _splits(run_dir: Path, fold_dirs: list[Path]) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    dirs = fold_dirs or [run_dir]
    several_parents = len({d.parent for d in dirs}) > 1  # a selection's members: fold_0 of each
    for d in dirs:
        p = d / "splits.json"
        if p.is_file():
            s = json.loads(p.read_text())
            out[f"{d.parent.name}/{d.name}" if several_parents else d.name] = {
                k: len(v) for k, v in s.items() if isinstance(v, list)}
    return out


def _selection_path(given: str) -> Path:
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / "selection.json"
    if not path.is_file():
        raise DataError(f"selection={given}: {path} not found (give a selection.json from medseg-select or its folder)")
    return path


def _member_groups(source: Path, selection) -> list[list[Path]]:
    """Per ensemble member, its run folders: the finished folds of a k-fold folder, or the run itself."""
    from medseg.pipelines.ensemble import fold_dirs

    members = selection.members if selection is not None else [source]
    groups = []
    for n, m in enumerate(members):
        m = Path(m).expanduser()
        where = f"selection={source}: member {n} " if selection is not None else ""
        if not m.is_dir():
            raise DataError(f"{where}{m}: run folder not found" +
                            (" (moved or deleted since medseg-select? run medseg-select again)" if where else ""))
        folds = fold_dirs(m)
        if not folds and list(m.glob("fold_*")):
            raise DataError(f"{where}{m}: a k-fold folder without a finished fold (no fold_*/results.json)")
        groups.append(folds or [m])
    return groups


def export_run(cfg: DictConfig, out_dir: str | Path) -> Path:
    """Export ``cfg.run_dir`` (a run or a k-fold folder) or ``cfg.selection`` (a ``selection.json``
    from medseg-select, or its folder) to ``out_dir``; returns the package folder.

    A selection exports every member's networks (all folds of a k-fold member); the runner takes the
    fold mean per member, the members' weighted mean, the temperature on those probabilities, the
    per-class thresholds and postprocessing rules, in the order of :class:`Selection`.

    The package is assembled in a temporary folder next to ``out_dir`` and moved into place when
    complete and verified, so a failed export never leaves a half-written package."""
    from medseg.inference.selected import Selection
    from medseg.pipelines.predict import _reader_info

    fmt = str(cfg.get("format", "onnx"))
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}: choose onnx, torchscript or both")
    if fmt in ("onnx", "both"):
        import importlib.util

        missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"format={fmt} needs {' and '.join(missing)}: pip install 'medseg[export]' "
                              "(or export with format=torchscript)")
    given_run, given_sel = cfg.get("run_dir"), cfg.get("selection")
    if bool(given_run) == bool(given_sel):
        raise ConfigError("give run_dir=<run or k-fold folder> or selection=<selection.json or its folder>, "
                          f"exactly one (got run_dir={given_run}, selection={given_sel})")
    selection: Selection | None = None
    sel_spec: dict[str, Any] = {}
    if given_sel:
        import json

        run_dir = _selection_path(str(given_sel))
        selection = Selection.load(run_dir)
        sel_spec = json.loads(run_dir.read_text())
        fixed = [k for k in ("threshold", "postprocessing") if cfg.get(k) is not None]
        fixed += ["temperature"] if float(cfg.get("temperature") or 1.0) != 1.0 else []
        if fixed:
            raise ConfigError(f"selection=: {', '.join(fixed)} come from {run_dir}; drop the override(s)")
    else:
        run_dir = Path(str(given_run)).expanduser()
        if not run_dir.is_dir():
            raise DataError(f"{run_dir}: run folder not found")
    groups = _member_groups(run_dir, selection)
    members = [d for g in groups for d in g]
    folds = members if selection is None and list(run_dir.glob("fold_*")) else []
    run_cfgs = [load_run_config(d, cfg.get("overrides")) for d in members]
    rc = run_cfgs[0]
    info = _reader_info(rc)
    steps = preprocess_spec(rc.data.get("preprocess"))
    net_channels = _network_channels(steps, info.in_channels, info.spatial_dims)
    first_ckpt = resolve_checkpoint(members[0], str(cfg.get("ckpt", "best")))
    ckpt_channels = _checkpoint_in_channels(first_ckpt)
    if ckpt_channels is not None and ckpt_channels != net_channels:
        # the reader's defaults (data root absent, e.g. BraTS: one channel per chosen modality) are
        # wrong; the checkpoint's first convolution says how many channels the network takes
        if _network_channels(steps, ckpt_channels, info.spatial_dims) != ckpt_channels:
            raise CheckpointError(f"{first_ckpt}: the network takes {ckpt_channels} channels, the run's "
                                  f"preprocessing gives {net_channels}; set overrides={{data: {{root: <the data>}}}}")
        info.in_channels = net_channels = ckpt_channels
    net_info = dataclasses.replace(info, in_channels=net_channels)

    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and any(out_dir.iterdir()):
        if not cfg.get("overwrite", False):
            raise ConfigError(f"out={out_dir}: folder exists and is not empty (choose another out= or overwrite=true)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        (work / "models").mkdir()
        manifest_members: list[dict[str, Any]] = []
        task: Task | None = None
        inference: dict[str, Any] | None = None
        for k, (d, c) in enumerate(zip(members, run_cfgs)):
            if preprocess_spec(c.data.get("preprocess")) != steps:
                raise ConfigError(f"{d}: data.preprocess differs from {members[0]}'s; they cannot share a package")
            module = build_module(c, net_info)
            ckpt = resolve_checkpoint(d, str(cfg.get("ckpt", "best")))
            try:
                load_weights(module, ckpt)
            except RuntimeError as exc:  # state-dict shape mismatch: the reader defaults do not fit
                raise CheckpointError(f"{ckpt}: does not fit the network built from {d}/.hydra/config.yaml "
                                      f"({str(exc).splitlines()[-1].strip()[:200]}); if data.root is not "
                                      "present here, pass overrides={data: {root: <the data>}}") from exc
            module.eval()
            task = module.task
            if selection is not None:
                selection.check_task(task, str(d))
            spec = inference_spec(c.inference, net_size_divisor(module.net))
            if inference is not None and spec != inference:
                raise ConfigError(f"{d}: inference settings differ from {members[0]}'s; they cannot share a package")
            inference = spec
            window = spec.get("roi_size") or spec.get("resize_to") or [max(64, spec["size_divisor"] * 4)] * info.spatial_dims
            need_dynamic = spec["mode"] == "whole"
            files, exports = {}, {}
            if fmt in ("onnx", "both"):
                files["onnx"] = f"models/member_{k}.onnx"
                exports["onnx"] = export_onnx(module.net, window, net_channels, work / files["onnx"],
                                              spec["size_divisor"], need_dynamic)
            if fmt in ("torchscript", "both"):
                files["torchscript"] = f"models/member_{k}.ts"
                exports["torchscript"] = export_torchscript(module.net, window, net_channels, work / files["torchscript"],
                                                            spec["size_divisor"], need_dynamic)
            name = f"{d.parent.name}/{d.name}" if selection is not None and d.name.startswith("fold_") else d.name
            manifest_members.append({"name": name, "checkpoint": str(ckpt), "network": type(module.net).__name__,
                                     "files": files, "export": exports})
        assert task is not None and inference is not None  # there is at least one member
        postprocessing: dict[str, Any]
        ensemble: dict[str, Any]
        if selection is not None:
            threshold = selection.thresholds if selection.thresholds is not None else task.threshold
            decision = decision_spec(task.kind, task.class_names, threshold, selection.temperature)
            decision["temperature_on"] = "probabilities"  # Selection.combine: after the member mean
            postprocessing = _selection_postprocessing(selection)
            ensemble = {"method": "mean", "weights": list(selection.weights),
                        "groups": _index_groups(groups), "members": [str(g) for g in selection.members]}
        else:
            threshold = cfg.get("threshold")
            threshold = task.threshold if threshold is None else (
                list(threshold) if OmegaConf.is_list(threshold) else float(threshold))
            decision = decision_spec(task.kind, task.class_names, threshold, float(cfg.get("temperature") or 1.0))
            postprocessing = cast(dict, OmegaConf.to_container(cfg.postprocessing)) if cfg.get("postprocessing") else {}
            ensemble = {"method": "mean", "weights": None}
        unknown = sorted(set(postprocessing) - set(task.class_names))
        if unknown:
            raise ConfigError(f"postprocessing: unknown classes {unknown} (classes: {task.class_names})")
        reader_target = str(rc.data.reader._target_)
        reader_cls = reader_target.rsplit(".", 1)[-1]
        modalities = _reader_modalities(rc)
        modality = ", ".join(modalities or []) or f"{reader_cls} images"
        manifest = {
            "format_version": runner.FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "name": str(cfg.get("name") or (run_dir.parent.name if selection is not None else None)
                        or rc.get("task_name") or run_dir.name),
            "task": {"kind": task.kind, "classes": list(task.class_names)},
            "input": {"spatial_dims": info.spatial_dims, "channels": info.in_channels, "modality": modality,
                      "modalities": modalities,
                      "reading": "2D image scaled to [0, 1] (8-bit / 255, 16-bit / 65535), RGB for 3 channels, "
                                 "grey for 1; NIfTI float32, channels last in a 4D file"},
            "network": {"in_channels": net_channels, "out_channels": task.out_channels},
            "preprocessing": {"steps": steps},
            "inference": inference,
            "tta": tta_spec(cfg.tta if cfg.get("tta") is not None else rc.get("tta", False)),
            "ensemble": ensemble,
            "decision": decision,
            "postprocessing": postprocessing,
            "output": {"nifti_label_values": list(cfg.nifti_label_values) if cfg.get("nifti_label_values") else None},
            "members": manifest_members,
            "source": {"run_dir": str(run_dir),
                       "kind": ("medseg-select result" if selection is not None
                                else "k-fold ensemble" if folds else "single run"),
                       "select": _selection_summary(run_dir, sel_spec, groups) if selection is not None else None},
        }
        write_json_atomic(work / runner.MANIFEST, manifest)
        copy_runner(work)
        card = build_card(cfg, manifest, rc, run_dir, members, bool(folds), info, groups)
        write_json_atomic(work / "model_card.json", card)
        write_text_atomic(work / "model_card.md", card_mod.render_markdown(card))
        write_checksums(work)
        verify(work)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.rename(out_dir)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    if cfg.get("zip"):
        import zipfile

        from medseg.utils.io import save_with

        def write_zip(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in sorted(out_dir.rglob("*")):
                    if p.is_file():
                        zf.write(p, Path(out_dir.name) / p.relative_to(out_dir))
        save_with(out_dir.with_name(out_dir.name + ".zip"), write_zip)
    log.info("package written to %s (%d member(s), %s)", out_dir, len(members), fmt)
    return out_dir


def _index_groups(groups: list[list[Path]]) -> list[list[int]]:
    out, k = [], 0
    for g in groups:
        out.append(list(range(k, k + len(g))))
        k += len(g)
    return out


def _selection_postprocessing(selection) -> dict[str, dict]:
    """Selection rules (``{"rule": "largest" | "min_size" | "none"}``) -> the package's per-class spec,
    with full connectivity (8 / 26 neighbours) as :mod:`medseg.inference.postprocess` uses."""
    out = {}
    for name, rule in zip(selection.class_names, selection.rules):
        if rule.get("rule") == "largest":
            out[name] = {"largest_component": True, "connectivity": "full"}
        elif rule.get("rule") == "min_size":
            out[name] = {"min_size": float(rule["min_size"]), "connectivity": "full"}
    return out


def _selection_summary(path: Path, spec: dict, groups: list[list[Path]]) -> dict[str, Any]:
    """What the model card and package.json state about the selection: members, steps, OOF scores."""
    return {"selection": str(path),
            "members": [{"path": m.get("path"), "kind": m.get("kind"), "weight": m.get("weight"),
                         "networks": len(g)} for m, g in zip(spec["members"], groups)],
            "temperature": spec.get("temperature"), "thresholds": spec.get("thresholds"),
            "postprocessing": spec.get("postprocessing"), "oof": spec.get("oof"),
            "steps": spec.get("steps") or [], "note": spec.get("note")}


def build_card(cfg: DictConfig, manifest: dict, rc: DictConfig, run_dir: Path, members: list[Path],
               is_kfold: bool, info, groups: list[list[Path]] | None = None) -> dict[str, Any]:
    data = cast(dict, OmegaConf.to_container(rc.data, resolve=True))
    spacing = None
    reader_spacing = data.get("reader", {}).get("spacing") if isinstance(data.get("reader"), dict) else None
    if reader_spacing:
        spacing = reader_spacing
    select = manifest["source"].get("select")
    if select is not None:  # each member's own score tables, named by member
        scores = []
        for g in groups or []:
            root = g[0].parent if len(g) > 1 or g[0].name.startswith("fold_") else g[0]
            scores += [{**s, "source": f"member {root.name}: {s['source']}"}
                       for s in card_mod.collect_scores(root, root != g[0])]
        split_dirs = members
    else:
        scores = card_mod.collect_scores(run_dir, is_kfold)
        split_dirs = members if is_kfold else []
    temperature = manifest["decision"]["temperature"]
    task = manifest["task"]
    ensemble = f"{len(members)} member(s), mean of probabilities"
    calibration_note = ("Probabilities are the network's activations" +
                        (f" at temperature {temperature}" if temperature != 1.0 else " (temperature 1: not recalibrated)") +
                        "; no calibration was measured at export (recalibrate with medseg-select).")
    if select is not None:
        ensemble = ("; ".join(f"{Path(str(m['path'])).name} x{m['weight']:.3f} ({m['networks']} network(s), fold mean)"
                              for m in select["members"]) + " (weighted mean of the members, then the temperature)")
        oof = select.get("oof") or {}
        calibration_note = (f"Temperature {temperature:.4f} fitted by medseg-select on out-of-fold predictions "
                            f"({oof.get('cases')} cases), applied to the ensemble's probabilities; ECE "
                            f"{oof.get('ece_before', float('nan')):.4f} -> {oof.get('ece_after', float('nan')):.4f} "
                            "on those cases.")
    return {
        "name": manifest["name"], "format_version": manifest["format_version"], "created": manifest["created"],
        "source": {**manifest["source"], "members": len(members),
                   "checkpoints": [m["checkpoint"] for m in manifest["members"]]},
        "task": {**task, "decision_rule": manifest["decision"]["rule"],
                 "thresholds": manifest["decision"]["thresholds"]},
        "input": {"spatial_dims": info.spatial_dims, "channels": info.in_channels,
                  "network_channels": manifest["network"]["in_channels"],
                  "modality": cfg.get("modality") or manifest["input"].get("modality") or
                  f"as read by {data['reader']['_target_'].rsplit('.', 1)[-1]}",
                  "spacing": spacing, "reading": manifest["input"]["reading"]},
        "preprocessing": manifest["preprocessing"]["steps"], "inference": manifest["inference"],
        "tta": manifest["tta"], "ensemble": ensemble, "selection": select,
        "postprocessing": manifest["postprocessing"],
        "training_data": {"reader": data["reader"]["_target_"], "root": data.get("root"),
                          "splits": _splits(run_dir, split_dirs)},
        "scores": scores,
        "calibration": {"temperature": temperature, "note": calibration_note},
        "intended_use": str(cfg.get("intended_use") or
                            "Research use: segmentation of images like the training data (same modality, "
                            "acquisition and preprocessing). Not a medical device; every output needs review "
                            "by a qualified reader."),
        "limits": list(cfg.get("limits") or _default_limits(manifest)),
        "versions": card_mod.versions(),
        "licence": str(cfg.get("licence") or "not stated: set licence= at export; check the training data's licence"),
    }


def _default_limits(manifest: dict) -> list[str]:
    limits = ["Scores hold for data like the evaluation split only; other scanners, sites or populations may differ.",
              "No out-of-distribution detection: the model always returns a mask.",
              "Inputs must be read as the card's Input section says (scaling, channel order)."]
    if any(s["args"].get("within_roi") for s in manifest["preprocessing"]["steps"]):
        limits.append("Normalisation statistics were taken inside the dataset's region of interest (e.g. the "
                      "field of view) in training; give the runner that mask with --roi, or the statistics "
                      "come from the whole image (as medseg-predict input_dir= does).")
    return limits
