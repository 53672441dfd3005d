"""Learning-rate schedules that need more than one torch scheduler; ``_partial_`` factories taking
``optimizer`` (see ``conf/scheduler/``)."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


def cosine_with_warmup(optimizer: Optimizer, max_epochs: int, warmup_epochs: int = 1,
                       warmup_start_factor: float = 0.01, eta_min: float = 0.0) -> LRScheduler:
    """Linear warm-up from ``warmup_start_factor * lr`` to ``lr`` over ``warmup_epochs`` steps, then
    cosine decay to ``eta_min`` over the remaining ``max_epochs - warmup_epochs`` steps."""
    if not 0 <= warmup_epochs < max_epochs:
        raise ValueError(f"warmup_epochs must be in [0, max_epochs={max_epochs}), got {warmup_epochs}")
    cosine = CosineAnnealingLR(optimizer, T_max=max_epochs - warmup_epochs, eta_min=eta_min)
    if warmup_epochs == 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=warmup_start_factor, end_factor=1.0, total_iters=warmup_epochs)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_epochs])
