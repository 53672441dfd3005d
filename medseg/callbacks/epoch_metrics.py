"""Write ``metrics.csv`` (one row per epoch) and ``loss_curve.png`` into the run folder.

Kept beside Lightning's ``CSVLogger`` (``logger=csv`` writes ``logs/csv/metrics.csv``) because this
one is written whatever ``logger=`` is chosen, has one row per epoch with train and validation
scalars together, survives a resume and drives ``loss_curve.png`` and the reports.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from medseg.utils.io import write_text_atomic


class EpochMetricsWriter(L.Callback):
    """After every epoch, append the epoch's logged scalars to ``metrics.csv`` (rewritten
    atomically) and redraw ``loss_curve.png``. Rank 0 only; the rows survive a resume."""

    def __init__(self, out_dir: str, filename: str = "metrics.csv", plot: str | None = "loss_curve.png") -> None:
        self.out_dir, self.filename, self.plot = Path(out_dir), filename, plot
        self.rows: list[dict[str, Any]] = []
        self._epoch_lr: float | None = None

    @rank_zero_only
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # an epoch-interval scheduler has already stepped by on_train_epoch_end: read the lr the
        # epoch trains at here (its first step's, for step-interval schedules)
        self._epoch_lr = _first_lr(trainer)

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs after the epoch's validation, so train and validation scalars are both final
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for k, v in trainer.callback_metrics.items():
            if k.endswith("_step"):
                continue
            try:
                row[k.removesuffix("_epoch")] = float(v)
            except (TypeError, ValueError):
                continue
        lr = self._epoch_lr if self._epoch_lr is not None else _first_lr(trainer)
        if lr is not None:
            row["lr"] = lr
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        self._write()

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))

    def _write(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(self.rows)
        write_text_atomic(self.out_dir / self.filename, buf.getvalue())
        if self.plot:
            from medseg.report.plots import plot_loss_curve

            plot_loss_curve(self.rows, self.out_dir / self.plot)


def _first_lr(trainer: L.Trainer) -> float | None:
    """The learning rate of the first optimiser's first parameter group, ``None`` without one."""
    for opt in trainer.optimizers[:1]:
        return float(opt.param_groups[0]["lr"])
    return None
