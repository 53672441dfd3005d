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


def progress_callback(force: str | None = None) -> L.Callback:
    """``RichProgressBar`` when stdout is a terminal (or ``force="rich"``), else :class:`PlainEpochLog`."""
    use_rich = force == "rich" or (force is None and sys.stdout.isatty())
    return RichProgressBar() if use_rich else PlainEpochLog()
