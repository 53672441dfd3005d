"""A Rich progress bar in a terminal; one plain line per epoch when output is not a TTY (CI, logs)."""

from __future__ import annotations

import logging
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger("medseg")


class PlainEpochLog(L.Callback):
    """Log ``epoch N/M  train/loss=...  val/loss=...  val/dice=...  (12.3 s)`` after each epoch."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    @rank_zero_only
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        keys = ("train/loss", "val/loss", "val/dice")
        parts = [f"{k}={float(trainer.callback_metrics[k]):.4f}" for k in keys if k in trainer.callback_metrics]
        took = time.perf_counter() - getattr(self, "_t0", time.perf_counter())
        log.info("epoch %d/%d  %s  (%.1f s)", trainer.current_epoch + 1, trainer.max_epochs, "  ".join(parts), took)


class EpochBar(RichProgressBar):
    """Lightning's Rich bar, reading like :class:`PlainEpochLog`: ``Epoch 2/2`` on the last of two epochs
    (Lightning counts from 0: ``Epoch 1/1``), no ``v_num`` (the logger's version, ``csv`` here), and the
    bar's line ended before Lightning logs "`Trainer.fit` stopped" (else that line is glued onto the bar)."""

    def _get_train_description(self, current_epoch: int) -> str:
        text = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
            text += f"/{self.trainer.max_epochs}"
        # as Lightning's: pad to the validation bar's description so the bar does not flicker
        return f"{text:{len(self.validation_description)}}"

    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        last_epoch = trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch + 1
        out_of_steps = trainer.max_steps is not None and 0 <= trainer.max_steps <= trainer.global_step
        if last_epoch or out_of_steps or trainer.should_stop:
            self._stop_progress()  # ends the live display (and its line) before the fit loop logs why it stopped


def progress_callback(force: str | None = None) -> L.Callback:
    """:class:`EpochBar` when stdout is a terminal (or ``force="rich"``), else :class:`PlainEpochLog`."""
    use_rich = force == "rich" or (force is None and sys.stdout.isatty())
    return EpochBar() if use_rich else PlainEpochLog()
