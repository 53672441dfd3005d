"""The LightningModule: any network, loss, optimiser and scheduler from config, for 2D and 3D,
binary, multi-class and multi-label tasks (see :mod:`medseg.tasks`).

Training steps see patches; validation and test steps see whole images through the
inferer of the ``inference`` config group (MONAI's sliding window by default). Loss is logged per
epoch only, and Dice is accumulated in a DDP-aware torchmetrics state, so no step waits on a
device-to-host sync for logging.

Networks whose output is smaller than their input (a ``valid``-padding U-Net) are compared against
the centre-cropped target and ROI automatically. Networks that return a tuple ``(main, aux...)`` in
training are trained through :class:`~medseg.losses.deep_supervision.DeepSupervisionLoss`.
``precision``, ``channels_last`` and ``compile`` are the speed policy of :mod:`medseg.utils.runtime`
(``auto`` in config is resolved per device by :func:`medseg.pipelines.build.build_module`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import lightning as L
import torch
from monai.inferers import Inferer
from torch import nn
from torchmetrics import MeanMetric

from medseg.losses.deep_supervision import DeepSupervisionLoss
from medseg.metrics.running import MeanPerImageDice
from medseg.models.blocks import center_crop
from medseg.tasks import Task
from medseg.utils.runtime import autocast, rebalance_threads


class SegmentationModule(L.LightningModule):
    """Args:
        net: the network (``in_channels`` -> ``task.out_channels`` logits).
        loss: ``(logits, target) -> scalar`` following the loss convention.
        optimizer: ``params -> torch.optim.Optimizer`` (a partial from config).
        scheduler: ``optimizer -> LRScheduler`` (a partial) or ``None``; ``scheduler_interval`` and
            ``monitor`` say how Lightning steps it.
        task: a :class:`~medseg.tasks.Task`.
        predictor: the whole-image inferer for validation/test/predict (a MONAI ``Inferer``, called
            ``predictor(image, net)``; see :mod:`medseg.inference.inferers`).
        deep_supervision_weights: weights of ``(main, aux...)`` outputs for networks that return a
            tuple in training; ``None``: ``1, 1/2, 1/4...`` normalised.
        channels_last: store the network and training batches in channels-last memory format
            (faster convolutions with mixed precision: CUDA, and CPUs with bf16).
        precision: the Lightning precision of the run (``bf16-mixed``, ``16-mixed``, ``32-true``):
            :meth:`predict_logits` runs under the same autocast outside Lightning's loops too
            (evaluation, inference), and returns float32 logits.
        compile: run training forward passes through ``torch.compile(net)``; the checkpoint keeps the
            plain network's parameter names.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable,
        task: Task,
        predictor: Inferer,
        scheduler: Callable | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "val/dice",
        deep_supervision_weights: list[float] | None = None,
        channels_last: bool = False,
        compile: bool = False,
        precision: str | int = "32-true",
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = DeepSupervisionLoss(loss, deep_supervision_weights)
        self.channels_last = bool(channels_last)
        self.eval_precision = str(precision)
        self._compiled: list[Callable] = []  # a list: keeps the compiled wrapper out of the state dict
        if compile:
            self._compiled.append(torch.compile(net))
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval, self.monitor = scheduler_interval, monitor
        self.task, self.predictor = task, predictor
        self.val_dice = MeanPerImageDice(task.n_scored)
        # sum/count states: the mean over all images of all ranks, also with uneven shards
        # (Lightning's sync_dist averages per-rank means, which is wrong when shards differ in size).
        # Validation only: test scores come from medseg's evaluator (medseg.evaluation), not a test loop.
        self.eval_loss = nn.ModuleDict({"val": MeanMetric()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format the network is fed (channels-last where the module uses it)."""
        if not self.channels_last:
            return x
        return x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)

    def setup(self, stage: str) -> None:
        if self.channels_last:
            dims = next((m.weight.ndim for m in self.net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), 4)
            self.net.to(memory_format=torch.channels_last if dims == 4 else torch.channels_last_3d)

    # ------------------------------------------------------------- training
    def on_train_epoch_start(self) -> None:
        rebalance_threads()  # another medseg run started or ended beside this one (trainer.threads: auto)
        loader = self.trainer.train_dataloader
        set_epoch = getattr(getattr(loader, "dataset", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.current_epoch)

    def compute_loss(self, logits: torch.Tensor | tuple[torch.Tensor, ...], mask: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` (or ``(main, aux...)``) against ``mask``, cropped to the main output's size."""
        main = logits if isinstance(logits, torch.Tensor) else logits[0]
        target = self.task.loss_target(mask)
        return self.loss(logits, center_crop(target, main.shape[2:]))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        net = self._compiled[0] if self._compiled else self.net
        logits = net(self.memory_format(batch["image"]))
        loss = self.compute_loss(logits, batch["mask"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["image"].shape[0], sync_dist=True)
        return loss

    # ----------------------------------------------------------- evaluation
    @torch.no_grad()
    def predict_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Whole-image logits (float32) under the run's autocast; MONAI's sliding window accumulates
        the windows in the input's dtype (float32 images: float32 probabilities)."""
        with autocast(image.device.type, self.eval_precision):
            logits = self.predictor(image, self._eval_net)
        return logits.float()

    def _eval_net(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.memory_format(x))

    def _eval_step(self, batch: dict, stage: str, metric: MeanPerImageDice) -> None:
        logits = self.predict_logits(batch["image"])
        loss = self.compute_loss(logits, batch["mask"])
        pred = self.task.discretize(self.task.activation(logits))
        spatial = logits.shape[2:]  # smaller than the image only for a valid net run without padding
        metric.update(pred, center_crop(self.task.target_to_binary(batch["mask"]), spatial),
                      center_crop(batch["roi"], spatial))
        mean_loss = cast(MeanMetric, self.eval_loss[stage])
        mean_loss.update(loss.detach())
        self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, batch_size=1)

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

    # ------------------------------------------------------------ optimiser
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval,
                                 "monitor": self.monitor}}
