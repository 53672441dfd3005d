"""The LightningModule: any network, loss, optimiser and scheduler from config, for 2D and 3D,
binary, multi-class and multi-label tasks (see :mod:`medseg.tasks`).

Training steps see patches; validation and test steps see whole images through the
:class:`~medseg.inference.predictor.Predictor` (sliding window by default). Loss is logged per
epoch only, and Dice is accumulated in a DDP-aware torchmetrics state, so no step waits on a
device-to-host sync for logging.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import nn

from medseg.inference.predictor import Predictor
from medseg.metrics.running import MeanPerImageDice
from medseg.tasks import Task


class SegmentationModule(L.LightningModule):
    """Args:
        net: the network (``in_channels`` -> ``task.out_channels`` logits).
        loss: ``(logits, target) -> scalar`` following the loss convention.
        optimizer: ``params -> torch.optim.Optimizer`` (a partial from config).
        scheduler: ``optimizer -> LRScheduler`` (a partial) or ``None``; ``scheduler_interval`` and
            ``monitor`` say how Lightning steps it.
        task: a :class:`~medseg.tasks.Task`.
        predictor: whole-image inference rule for validation/test/predict.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable,
        task: Task,
        predictor: Predictor,
        scheduler: Callable | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "val/dice",
    ) -> None:
        super().__init__()
        self.net, self.loss = net, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval, self.monitor = scheduler_interval, monitor
        self.task, self.predictor = task, predictor
        self.val_dice = MeanPerImageDice(task.n_scored)
        self.test_dice = MeanPerImageDice(task.n_scored)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # ------------------------------------------------------------- training
    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        ds = getattr(loader, "dataset", None)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(self.current_epoch)

    def compute_loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, self.task.loss_target(mask))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self.net(batch["image"])
        loss = self.compute_loss(logits, batch["mask"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["image"].shape[0], sync_dist=True)
        return loss

    # ----------------------------------------------------------- evaluation
    def predict_logits(self, image: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.net, image)

    def _eval_step(self, batch: dict, stage: str, metric: MeanPerImageDice) -> None:
        logits = self.predict_logits(batch["image"])
        loss = self.compute_loss(logits, batch["mask"])
        pred = self.task.discretize(self.task.activation(logits))
        metric.update(pred, self.task.target_to_binary(batch["mask"]), batch["roi"])
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=1, sync_dist=True)

    def _log_dice(self, stage: str, metric: MeanPerImageDice) -> None:
        per_class = metric.compute().reshape(-1)
        self.log(f"{stage}/dice", per_class.mean().float(), prog_bar=True, sync_dist=False)
        if len(per_class) > 1:
            for name, value in zip(self.task.class_names, per_class):
                self.log(f"{stage}/dice_{name}", value.float(), sync_dist=False)
        metric.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_dice)

    def on_validation_epoch_end(self) -> None:
        self._log_dice("val", self.val_dice)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_dice)

    def on_test_epoch_end(self) -> None:
        self._log_dice("test", self.test_dice)

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.task.activation(self.predict_logits(batch["image"]))

    # ------------------------------------------------------------ optimiser
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval,
                                 "monitor": self.monitor}}
