"""metrics.csv: the ``lr`` of epoch k's row is the learning rate epoch k trained at (issue #12 item 10)."""

from __future__ import annotations

import math

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from medseg.callbacks.epoch_metrics import EpochMetricsWriter


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.seen: dict[int, float] = {}

    def training_step(self, batch, batch_idx):
        self.seen[self.current_epoch] = self.optimizers().param_groups[0]["lr"]
        loss = self.lin(batch[0]).pow(2).mean()
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=0.002)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3, eta_min=1e-5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def test_lr_column_is_the_lr_each_epoch_trained_at(tmp_path):
    module = _Tiny()
    data = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[EpochMetricsWriter(str(tmp_path), plot=None)])
    trainer.fit(module, data)
    rows = pd.read_csv(tmp_path / "metrics.csv")
    expected = [1e-5 + (0.002 - 1e-5) * (1 + math.cos(math.pi * k / 3)) / 2 for k in range(3)]
    assert list(rows["epoch"]) == [0, 1, 2]
    assert rows["lr"].tolist() == [module.seen[k] for k in range(3)]  # what the optimiser used
    assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(rows["lr"], expected)), rows["lr"].tolist()
    assert rows["lr"][0] == 0.002 and rows["lr"].iloc[-1] > 1e-5  # not one epoch late
