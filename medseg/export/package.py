"""The export package format: its manifest (``package.json``), checksums and loading.

A package is one folder::

    package.json        format_version, task, decision (thresholds, temperature), preprocessing
                        steps, inference (mode, window, overlap, blend), tta, ensemble, networks
    models/member_<i>.onnx / .ts    one network per ensemble member (ONNX and/or TorchScript)
    runner.py           the standalone runner (medseg/export/runner.py, copied)
    model_card.md, model_card.json
    checksums.sha256    sha256 of every other file (``sha256sum -c checksums.sha256`` verifies it)

A ``medseg-select`` result (``medseg-export selection=``) fills ``ensemble.groups`` (each member's
networks: its folds) and ``ensemble.weights`` (per member), ``decision`` (thresholds, temperature with
``temperature_on: probabilities``) and ``postprocessing`` (``connectivity: full``); the runner applies
them in :class:`~medseg.inference.selected.Selection`'s order.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from medseg.errors import CheckpointError, ConfigError, DataError
from medseg.export import runner
from medseg.export.runner import CHECKSUMS, FORMAT_VERSION, MANIFEST, PackageError, sha256_file
from medseg.utils.io import write_text_atomic

PREPROCESS_MODULE = "medseg.data.preprocess"


def preprocess_spec(steps_cfg) -> list[dict[str, Any]]:
    """``data.preprocess`` of a run config -> ``[{"name", "args"}]`` with every default filled in.

    A step the standalone runner has no implementation of is refused (``ConfigError``)."""
    out = []
    steps = OmegaConf.to_container(steps_cfg, resolve=True) if steps_cfg else []
    if not isinstance(steps, list):
        raise ConfigError(f"data.preprocess must be a list of steps, got {type(steps).__name__}")
    for i, step in enumerate(steps):
        target = str(step.get("_target_", ""))
        name = target.rsplit(".", 1)[-1]
        if not target.startswith(PREPROCESS_MODULE + ".") or name not in runner.STEPS:
            raise ConfigError(f"data.preprocess[{i}]: step {target!r} has no implementation in the standalone "
                              f"runner (supported: {sorted(runner.STEPS)}); it cannot be exported")
        params = inspect.signature(get_class(target)).parameters  # the constructor's, without self
        args = {k: p.default for k, p in params.items() if k != "self" and p.default is not inspect.Parameter.empty}
        args.update({k: v for k, v in step.items() if not k.startswith("_")})
        args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.items()}
        out.append({"name": name, "args": args})
    return out


def inference_spec(inference_cfg: DictConfig, size_divisor: int) -> dict[str, Any]:
    """The run's ``inference`` group (one of the inferers of :mod:`medseg.inference.inferers`) as the
    plain values the package's runner reproduces: ``mode`` ``sliding_window`` | ``whole`` | ``resize``.

    ``size_divisor`` is the network's (:func:`medseg.inference.net_size_divisor`); a
    ``PadToMultipleInferer`` with its own ``size_divisor`` pads by that, a ``SimpleInferer`` by 1.
    """
    from hydra.utils import instantiate
    from monai.inferers import SimpleInferer, SlidingWindowInferer

    from medseg.inference.inferers import (
        PadToMultipleInferer,
        ResizeInferer,
        root_cause,
        upgrade_inference_config,
    )

    inference_cfg = upgrade_inference_config(inference_cfg)
    target = inference_cfg.get("_target_")
    try:
        inferer = instantiate(inference_cfg)
    except Exception as exc:
        raise ConfigError(f"inference (_target_={target!r}): cannot be built: {root_cause(exc)}") from exc
    spec: dict[str, Any] = {"size_divisor": int(size_divisor)}
    if isinstance(inferer, SlidingWindowInferer):
        spec["mode"] = "sliding_window"
        spec.update(_sliding_window_spec(inferer))
    elif isinstance(inferer, ResizeInferer):
        spec.update(mode="resize", resize_to=list(inferer.resize_to))
    elif isinstance(inferer, PadToMultipleInferer):
        spec.update(mode="whole", size_divisor=int(inferer.size_divisor or size_divisor))
    elif isinstance(inferer, SimpleInferer):
        spec.update(mode="whole", size_divisor=1)
    else:
        raise ConfigError(f"inference._target_={target!r}: only SlidingWindowInferer, SimpleInferer, "
                          "PadToMultipleInferer and ResizeInferer can be exported")
    return {"mode": spec.pop("mode"), **spec}


def _sliding_window_spec(inferer: Any) -> dict[str, Any]:
    """A MONAI ``SlidingWindowInferer``'s settings, refusing those the package's runner does not reproduce."""
    def plain(value: Any) -> Any:
        return str(getattr(value, "value", value))

    if plain(inferer.padding_mode) != "constant" or float(inferer.cval) != 0.0:
        raise ConfigError("inference.padding_mode/cval: the exported package pads windows with zeros only "
                          f"(got padding_mode={plain(inferer.padding_mode)!r}, cval={inferer.cval})")
    if plain(inferer.mode) not in ("gaussian", "constant"):
        raise ConfigError(f"inference.mode={plain(inferer.mode)!r}: the package blends windows by gaussian or constant")
    for key in ("overlap", "sigma_scale"):
        if isinstance(getattr(inferer, key), Sequence):
            raise ConfigError(f"inference.{key}: the package takes one value for every axis, "
                              f"got {list(getattr(inferer, key))}")
    if inferer.buffer_steps is not None or inferer.with_coord:
        raise ConfigError("inference.buffer_steps/with_coord: not supported by the exported package; leave them unset")
    return {"roi_size": [int(r) for r in inferer.roi_size], "overlap": float(inferer.overlap),
            "sw_batch_size": int(inferer.sw_batch_size), "blend": plain(inferer.mode),
            "sigma_scale": float(inferer.sigma_scale)}


def tta_spec(tta) -> dict[str, Any]:
    if not tta:
        return {"enabled": False}
    opts = OmegaConf.to_container(tta) if isinstance(tta, DictConfig) else tta
    opts = opts if isinstance(opts, dict) else {}
    return {"enabled": True, "flips": bool(opts.get("flips", True)), "rot90": bool(opts.get("rot90", True))}


def decision_spec(task_kind: str, classes: Sequence[str], threshold: float | Sequence[float],
                  temperature: float = 1.0) -> dict[str, Any]:
    """Thresholds per class (binary / multi-label; multi-class is argmax) and the logit temperature."""
    th = [float(threshold)] * len(classes) if isinstance(threshold, (int, float)) else [float(t) for t in threshold]
    if len(th) != len(classes):
        raise ConfigError(f"threshold: {len(th)} values for {len(classes)} classes")
    rule = "argmax over classes" if task_kind == "multiclass" else "probability > threshold, per class"
    return {"rule": rule, "thresholds": th if task_kind != "multiclass" else None, "temperature": float(temperature)}


def write_checksums(package: Path) -> Path:
    """``checksums.sha256`` (``sha256sum`` format) over every file of the package but itself."""
    lines = [f"{sha256_file(p)}  {p.relative_to(package).as_posix()}"
             for p in sorted(package.rglob("*")) if p.is_file() and p.name != CHECKSUMS]
    return write_text_atomic(package / CHECKSUMS, "\n".join(lines) + "\n")


def copy_runner(package: Path) -> Path:
    dest = package / "runner.py"
    shutil.copyfile(runner.__file__, dest)
    return dest


def verify(package: str | Path) -> dict[str, Any]:
    """Checksums and format version of a package (``CheckpointError`` naming the file on failure)."""
    try:
        return runner.verify_package(package)
    except PackageError as exc:
        raise CheckpointError(str(exc)) from exc


def load_package(package: str | Path, engine: str | None = None, threads: int | None = None) -> runner.Model:
    """A verified package, ready to predict (medseg's own copy of the runner: the package's
    ``runner.py`` is never imported). ``CheckpointError`` naming the file when it is refused."""
    try:
        return runner.Model(package, engine=engine, threads=threads)
    except PackageError as exc:
        raise CheckpointError(str(exc)) from exc
    except runner.InputError as exc:
        raise DataError(str(exc)) from exc


__all__ = ["FORMAT_VERSION", "MANIFEST", "CHECKSUMS", "preprocess_spec", "inference_spec", "tta_spec",
           "decision_spec", "write_checksums", "copy_runner", "verify", "load_package"]
