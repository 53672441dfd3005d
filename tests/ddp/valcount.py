"""Test helper callbacks, imported by the DDP child processes: what each rank saw, as JSON files."""

import json
from pathlib import Path

import lightning as L
import torch


class ValCount(L.Callback):
    """Per rank: validation images scored here and the total over ranks (``valcount_rank<r>.json``)."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:  # runs before the module's hook
        local = pl_module.val_dice.count.detach().clone()
        total = trainer.strategy.reduce(local.clone(), reduce_op="sum")
        rank = trainer.global_rank
        (self.out / f"valcount_rank{rank}.json").write_text(
            json.dumps({"rank": rank, "world": trainer.world_size, "local": int(local), "total": int(total),
                        "pid": torch.multiprocessing.current_process().pid}))


class LrRecord(L.Callback):
    """Writes each rank's starting learning rate to ``<out>/lr_rank<r>.json``."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_start(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        (self.out / f"lr_rank{trainer.global_rank}.json").write_text(json.dumps({"lr": lr}))
