"""Test helper callback (imported by the DDP child processes): records, per rank, how many validation
images this rank scored and the total over ranks, in ``<out>/valcount_rank<r>.json``."""

import json
from pathlib import Path

import lightning as L
import torch


class ValCount(L.Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:  # runs before the module's hook
        local = pl_module.val_dice.count.detach().clone()
        total = trainer.strategy.reduce(local.clone(), reduce_op="sum")
        rank = trainer.global_rank
        (self.out / f"valcount_rank{rank}.json").write_text(
            json.dumps({"rank": rank, "world": trainer.world_size, "local": int(local), "total": int(total),
                        "pid": torch.multiprocessing.current_process().pid}))
