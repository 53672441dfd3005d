from __future__ import annotations

import torch

from medseg.metrics.threshold import best_threshold


def test_best_threshold_finds_the_separating_value():
    g = torch.Generator().manual_seed(0)
    cases = []
    for _ in range(3):
        t = torch.rand(1, 16, 16, generator=g) < 0.3
        # foreground probabilities in (0.3, 0.4], background in [0, 0.2): 0.5 misses everything
        p = torch.where(t, 0.3 + 0.1 * torch.rand(1, 16, 16, generator=g), 0.2 * torch.rand(1, 16, 16, generator=g))
        cases.append((p, t, None))
    thr, dice = best_threshold(cases)
    # 0.20 .. 0.30 all separate perfectly; ties go to the one nearest 0.5
    assert abs(thr - 0.3) < 1e-9 and dice == 1.0
    _, dice_half = best_threshold(cases, grid=[0.5])
    assert dice_half == 0.0
