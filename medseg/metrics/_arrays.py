"""Inputs of the metric functions may be numpy arrays or torch tensors; each module converts once."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A CPU/GPU tensor view of ``x`` (numpy arrays are wrapped without a copy when possible)."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t if dtype is None else t.to(dtype)


def as_bool_array(x: Any) -> np.ndarray:
    """A boolean numpy array of ``x`` (tensors are moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=bool)
