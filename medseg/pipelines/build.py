"""Build the objects of a run from a composed Hydra config (all through ``hydra.utils.instantiate``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from medseg.callbacks.resume import ResumeCheckpoint
from medseg.data.datamodule import SegmentationDataModule
from medseg.errors import CheckpointError, ConfigError
from medseg.inference.inferers import make_inferer
from medseg.module import SegmentationModule
from medseg.tasks import Task
from medseg.utils import runtime
from medseg.utils.checkpoint import AtomicCheckpointIO, load_checkpoint

log = logging.getLogger(__name__)


@dataclass
class DataInfo:
    """What :func:`build_module` reads from a datamodule, for building a model without one (prediction
    on a folder, the viewer, the clinical app). ``reader``: the dataset reader when one was opened."""

    task: str
    class_names: list[str]
    in_channels: int
    spatial_dims: int = 2
    reader: Any = None


def build_datamodule(cfg: DictConfig) -> SegmentationDataModule:
    extra = {}
    if "num_workers" in cfg.data:  # auto: by the trainer's device (medseg.utils.runtime.resolve_num_workers)
        extra["num_workers"] = runtime.resolve_num_workers(cfg.data.num_workers, _accelerator_of(cfg))
    dm: SegmentationDataModule = instantiate(cfg.data, _convert_="partial", **extra)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def build_module(cfg: DictConfig, dm: SegmentationDataModule | DataInfo) -> SegmentationModule:
    task = Task(dm.task, dm.class_names, threshold=cfg.get("threshold", 0.5))
    extra = {"spatial_dims": dm.spatial_dims} if "spatial_dims" in cfg.model else {}
    net = instantiate(cfg.model, in_channels=dm.in_channels, out_channels=task.out_channels, **extra)
    n_params = sum(p.numel() for p in net.parameters())
    log.info("model %s: %s parameters (%.2f M)", type(net).__name__, f"{n_params:,}", n_params / 1e6)
    predictor = make_inferer(cfg.inference, net)
    options = dict(cfg.get("module") or {})  # deep_supervision_weights, channels_last, compile
    accelerator, precision = _accelerator_of(cfg), resolve_precision(cfg)
    options["channels_last"] = runtime.resolve_channels_last(options.get("channels_last", "auto"), accelerator,
                                                              precision)
    options["compile"] = runtime.resolve_compile(options.get("compile", "auto"), accelerator)
    return SegmentationModule(
        net=net,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        scheduler_interval=cfg.get("scheduler_interval", "epoch"),
        monitor=cfg.monitor,
        task=task,
        predictor=predictor,
        precision=precision,
        **options,
    )


def _accelerator_of(cfg: DictConfig) -> str:
    trainer = cfg.get("trainer") or {}
    return str(trainer.get("accelerator", "cpu"))


#: the values MEDSEG_PRECISION may take (Lightning's names)
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


def resolve_precision(cfg: DictConfig) -> str | int:
    """``trainer.precision`` of ``cfg`` with ``auto`` resolved for its accelerator
    (:func:`medseg.utils.runtime.resolve_precision`); ``32-true`` where the key is absent. The
    environment variable ``MEDSEG_PRECISION`` (e.g. ``32-true``) replaces ``auto`` on every machine:
    the test suite sets it so its calibrated floors and parity checks do not depend on the CPU's bf16
    support (the policy itself has its own tests)."""
    trainer = cfg.get("trainer") or {}
    value = trainer.get("precision", "32-true")
    forced = os.environ.get("MEDSEG_PRECISION")
    if forced and runtime.is_auto(value):
        if forced not in PRECISIONS:
            raise ConfigError(f"MEDSEG_PRECISION={forced}: choose one of {', '.join(PRECISIONS)}")
        return forced
    return runtime.resolve_precision(value, _accelerator_of(cfg))


def build_trainer(cfg: DictConfig, run_dir: Path) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not any(isinstance(c, ResumeCheckpoint) for c in callbacks):  # exact resume and clean interrupts
        callbacks.append(ResumeCheckpoint(Path(run_dir) / "checkpoints", seed=int(cfg.get("seed", 0))))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    extra: dict[str, object] = {} if any(isinstance(c, ProgressBar) for c in callbacks) else {"enable_progress_bar": False}
    if cfg.trainer.get("plugins") is None:  # checkpoints written atomically, read through load_checkpoint
        extra["plugins"] = [AtomicCheckpointIO()]
    trainer_cfg = OmegaConf.masked_copy(cfg.trainer, [k for k in cfg.trainer if k != "threads"])
    if "precision" in cfg.trainer:
        trainer_cfg.precision = resolve_precision(cfg)
    trainer: L.Trainer = instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False,
                                     default_root_dir=str(run_dir), **extra)
    _print_policy(cfg, trainer)
    return trainer


_POLICY_SHOWN: list[str] = []


def _print_policy(cfg: DictConfig, trainer: L.Trainer) -> None:
    """The start-up line (rank 0, once per process): device, precision, memory format, compile,
    threads, loader workers."""
    if _POLICY_SHOWN or not trainer.is_global_zero or runtime.is_ddp_child():
        return
    threads = runtime.configure_threads(cfg)  # a no-op when the CLI already set them
    module = cfg.get("module") or {}
    accelerator, precision = _accelerator_of(cfg), resolve_precision(cfg)
    workers = runtime.resolve_num_workers(cfg.data.get("num_workers", 0), accelerator) if "data" in cfg else 0
    line = runtime.startup_line(
        accelerator, precision,
        runtime.resolve_channels_last(module.get("channels_last", "auto"), accelerator, precision),
        runtime.resolve_compile(module.get("compile", "auto"), accelerator), threads, workers)
    _POLICY_SHOWN.append(line)
    log.info(line)


def load_weights(module: SegmentationModule, ckpt_path: str | Path) -> None:
    """Load network weights from a Lightning checkpoint (or a plain state dict) without unpickling code
    (:func:`medseg.utils.checkpoint.load_checkpoint`); a checkpoint of another network is a
    :class:`CheckpointError` naming the file."""
    state = load_checkpoint(ckpt_path)
    weights = state["state_dict"] if "state_dict" in state else state
    try:
        module.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        lines = str(exc).strip().splitlines()
        detail = "; ".join(x.strip() for x in lines[:3])[:400]
        raise CheckpointError(f"{ckpt_path}: does not fit this model ({detail}): the checkpoint was trained "
                              "with another model or data configuration") from exc
