"""Log what a segmentation run looks like to Weights & Biases (with ``logger=wandb``).

- at fit start: the composed run config (``<run dir>/.hydra/config.yaml``) as the wandb config;
- each ``every_n_epochs`` validation epoch: the first ``n_images`` validation images as ``wandb.Image``
  with the prediction and the ground truth as masks (one mask layer pair per class);
- after evaluation (:meth:`on_evaluation_end` of :class:`~medseg.callbacks.evaluation.EvaluationCallback`,
  called by :func:`medseg.pipelines.train.train`): the
  per-image and per-class tables and the report's overlays, and with ``log_model`` the best checkpoint
  as a model artifact (alias ``best``); then the wandb run is finished, so the next
  run in the same process (a sweep trial) starts a run of its own.

Rank 0 only. Without a ``WandbLogger`` among the trainer's loggers it does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only

from medseg.callbacks.evaluation import EvaluationCallback

if TYPE_CHECKING:
    from medseg.evaluation import EvaluationTable

log = logging.getLogger(__name__)


def _wandb_loggers(trainer: L.Trainer) -> list:
    from lightning.pytorch.loggers import WandbLogger

    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """(C, H, W) float image -> (H, W, 3) uint8, each channel min-max scaled (1 channel: grey)."""
    img = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    lo = img.reshape(img.shape[0], -1).min(1)[:, None, None]
    hi = img.reshape(img.shape[0], -1).max(1)[:, None, None]
    img = (img - lo) / np.maximum(hi - lo, 1e-8)
    return (np.moveaxis(img, 0, -1) * 255).round().astype(np.uint8)


def mask_layers(pred: np.ndarray, target: np.ndarray, class_names: list[str]) -> dict:
    """wandb ``masks=`` for (K, H, W) boolean prediction and target: one layer per class and source."""
    layers = {}
    for k, name in enumerate(class_names):
        suffix = "" if len(class_names) == 1 else f"_{name}"
        labels = {0: "background", 1: name}
        layers[f"prediction{suffix}"] = {"mask_data": pred[k].astype(np.uint8), "class_labels": labels}
        layers[f"ground_truth{suffix}"] = {"mask_data": target[k].astype(np.uint8), "class_labels": labels}
    return layers


def _middle_slice(a: torch.Tensor) -> torch.Tensor:
    """(C, D, H, W) -> (C, H, W) middle slice; 2D passes through."""
    return a[:, a.shape[1] // 2] if a.ndim == 4 else a


class WandbMedia(EvaluationCallback):
    """Args:
        run_dir: the run folder (its ``.hydra/config.yaml`` is logged as the config).
        n_images: validation images logged each time.
        every_n_epochs: log overlays every that many validation epochs.
        max_table_rows: the per-image table is cut to this many rows.
        log_model: log the best checkpoint as a wandb artifact after training (synced later when offline).
    """

    def __init__(self, run_dir: str, n_images: int = 2, every_n_epochs: int = 1, max_table_rows: int = 1000,
                 log_model: bool = False) -> None:
        self.log_model = bool(log_model)
        self.run_dir, self.n_images, self.every_n_epochs = Path(run_dir), int(n_images), max(1, int(every_n_epochs))
        self.max_table_rows = max_table_rows
        self._images: list = []

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cfg_file = self.run_dir / ".hydra" / "config.yaml"
        loggers = _wandb_loggers(trainer)
        if not loggers or not cfg_file.is_file():
            return
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(OmegaConf.load(cfg_file), resolve=False)
        for lg in loggers:
            lg.experiment.config.update(config, allow_val_change=True)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._images = []

    @torch.no_grad()
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if (not trainer.is_global_zero or trainer.sanity_checking or len(self._images) >= self.n_images
                or trainer.current_epoch % self.every_n_epochs or not _wandb_loggers(trainer)):
            return
        import wandb

        task = pl_module.task
        pred = task.discretize(task.activation(pl_module.predict_logits(batch["image"])))
        target = task.target_to_binary(batch["mask"])
        for i in range(batch["image"].shape[0]):
            if len(self._images) >= self.n_images:
                break
            image = _middle_slice(batch["image"][i]).float().cpu().numpy()
            p, t = (_middle_slice(x[i]).bool().cpu().numpy() for x in (pred, target))
            cid = batch.get("case_id", [f"val_{batch_idx}_{i}"])
            cid = cid[i] if isinstance(cid, (list, tuple)) else str(cid)
            self._images.append(wandb.Image(to_uint8_rgb(image), masks=mask_layers(p, t, task.class_names),
                                            caption=str(cid)))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._images and trainer.is_global_zero:
            for lg in _wandb_loggers(trainer):
                lg.experiment.log({"val/overlays": self._images, "trainer/global_step": trainer.global_step})
        self._images = []

    @rank_zero_only
    def on_evaluation_end(self, trainer: L.Trainer, run_dir: str | Path, results: Mapping[str, float],
                          table: EvaluationTable | None = None) -> None:
        """Log the evaluation tables and report overlays, then finish the wandb run."""
        loggers = _wandb_loggers(trainer)
        if not loggers:
            return
        import pandas as pd
        import wandb

        run_dir = Path(run_dir)
        payload: dict[str, object] = {}
        for name in ("per_image", "per_class"):
            path = run_dir / f"{name}.csv"
            if path.is_file():
                payload[f"test/{name}"] = wandb.Table(dataframe=pd.read_csv(path).head(self.max_table_rows))
        overlays = sorted((run_dir / "overlays").glob("*.png"))
        if overlays:
            payload["test/overlays"] = [wandb.Image(str(p), caption=p.stem) for p in overlays]
        cb = trainer.checkpoint_callback
        best = str(getattr(cb, "best_model_path", "") or "")
        monitor = getattr(cb, "monitor", None)
        for lg in loggers:
            if payload:
                lg.experiment.log(payload)
            lg.experiment.summary.update(dict(results))
            if self.log_model and best:
                art = wandb.Artifact(f"model-{lg.experiment.id}", type="model",
                                     metadata={"monitor": monitor, "score": results.get("val/best_dice")})
                art.add_file(best, name=Path(best).name)
                lg.experiment.log_artifact(art, aliases=["best"])
        wandb.finish()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if _wandb_loggers(trainer) and trainer.is_global_zero:
            import wandb

            wandb.finish(exit_code=1)
