"""Build the objects of a run from a composed Hydra config (all through ``hydra.utils.instantiate``)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from medseg.data.datamodule import SegmentationDataModule
from medseg.module import SegmentationModule
from medseg.tasks import Task

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig) -> SegmentationDataModule:
    dm: SegmentationDataModule = instantiate(cfg.data, _convert_="partial")
    dm.prepare_data()
    dm.setup("fit")
    return dm


def build_module(cfg: DictConfig, dm: SegmentationDataModule) -> SegmentationModule:
    task = Task(dm.task, dm.class_names, threshold=cfg.get("threshold", 0.5))
    extra = {"spatial_dims": dm.spatial_dims} if "spatial_dims" in cfg.model else {}
    net = instantiate(cfg.model, in_channels=dm.in_channels, out_channels=task.out_channels, **extra)
    n_params = sum(p.numel() for p in net.parameters())
    log.info("model %s: %s parameters (%.2f M)", type(net).__name__, f"{n_params:,}", n_params / 1e6)
    predictor = instantiate(cfg.inference, size_divisor=getattr(net, "size_divisor", 32))
    return SegmentationModule(
        net=net,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        scheduler_interval=cfg.get("scheduler_interval", "epoch"),
        monitor=cfg.monitor,
        task=task,
        predictor=predictor,
        **(cfg.get("module") or {}),  # deep_supervision_weights, channels_last, compile
    )


def build_trainer(cfg: DictConfig, run_dir: Path) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    extra = {} if any(isinstance(c, ProgressBar) for c in callbacks) else {"enable_progress_bar": False}
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                       default_root_dir=str(run_dir), **extra)


def load_weights(module: SegmentationModule, ckpt_path: str | Path) -> None:
    """Load network weights from a Lightning checkpoint without unpickling code (weights_only)."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"] if "state_dict" in state else state)
