"""Write ``metrics.csv`` (one row per epoch) and ``loss_curve.png`` into the run folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from medseg.utils.io import write_text_atomic


class EpochMetricsWriter(L.Callback):
    """After every epoch, append the epoch's logged scalars to ``metrics.csv`` (rewritten
    atomically) and redraw ``loss_curve.png``. Rank 0 only; the rows survive a resume."""

    def __init__(self, out_dir: str, filename: str = "metrics.csv", plot: str | None = "loss_curve.png") -> None:
        self.out_dir, self.filename, self.plot = Path(out_dir), filename, plot
        self.rows: list[dict] = []

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs after the epoch's validation, so train and validation scalars are both final
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for k, v in trainer.callback_metrics.items():
            if k.endswith("_step"):
                continue
            try:
                row[k.removesuffix("_epoch")] = float(v)
            except (TypeError, ValueError):
                continue
        for opt in trainer.optimizers[:1]:
            row["lr"] = float(opt.param_groups[0]["lr"])
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        self._write()

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
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
