"""Learning-rate schedules that need more than one torch scheduler; ``_partial_`` factories taking
``optimizer`` (see ``conf/scheduler/``)."""

from __future__ import annotations

import logging

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

log = logging.getLogger(__name__)


def cosine_with_warmup(optimizer: Optimizer, max_epochs: int, warmup_epochs: int = 1,
                       warmup_start_factor: float = 0.01, eta_min: float = 0.0) -> LRScheduler:
    """Linear warm-up from ``warmup_start_factor * lr`` to ``lr`` over ``warmup_epochs`` steps, then
    cosine decay to ``eta_min`` over the remaining ``max_epochs - warmup_epochs`` steps. A warm-up as
    long as the run (e.g. a 1-epoch debug run) is shortened to ``max_epochs - 1``, with a warning."""
    if warmup_epochs < 0 or max_epochs < 1:
        raise ValueError(f"need warmup_epochs >= 0 and max_epochs >= 1, got {warmup_epochs} and {max_epochs}")
    if warmup_epochs >= max_epochs:
        log.warning("warmup_epochs=%d >= max_epochs=%d: warm-up shortened to %d epochs",
                    warmup_epochs, max_epochs, max_epochs - 1)
        warmup_epochs = max_epochs - 1
    cosine = CosineAnnealingLR(optimizer, T_max=max_epochs - warmup_epochs, eta_min=eta_min)
    if warmup_epochs == 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=warmup_start_factor, end_factor=1.0, total_iters=warmup_epochs)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_epochs])
