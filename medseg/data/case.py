"""The one array convention that crosses every boundary in medseg.

A reader returns :class:`Case` objects; preprocessing, datasets, inference and metrics consume them.

* ``image``: float32, channels first, ``(C, H, W)`` in 2D or ``(C, D, H, W)`` in 3D.
* ``mask``: the label, or ``None`` where the split has none (a test set without ground truth).
  ``(H, W)`` / ``(D, H, W)`` integer class indices for binary and multi-class tasks,
  ``(K, H, W)`` uint8 multi-hot for multi-label tasks.
* ``roi``: optional boolean region in which metrics are computed (the DRIVE field of view).
* ``spacing``: voxel/pixel size in mm along the spatial axes (carried with 3D volumes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.errors import DataError  # noqa: F401  (re-exported for old imports)


@dataclass
class Case:
    case_id: str
    image: np.ndarray
    mask: np.ndarray | None = None
    roi: np.ndarray | None = None
    spacing: tuple[float, ...] | None = None
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[1:])

    def validate(self, source: str = "") -> Case:
        """Check shapes, dtypes and finiteness; raise :class:`DataError` naming ``source``."""
        where = source or self.case_id
        if self.image.ndim not in (3, 4):
            raise DataError(f"{where}: image must be (C,H,W) or (C,D,H,W), got shape {self.image.shape}")
        if not np.isfinite(self.image).all():
            raise DataError(f"{where}: image contains NaN or infinite values")
        spatial = self.spatial_shape
        if self.mask is not None and self.mask.shape[-len(spatial):] != spatial:
            raise DataError(
                f"{where}: mask shape {self.mask.shape} does not match image spatial shape {spatial}"
            )
        if self.roi is not None and self.roi.shape != spatial:
            raise DataError(f"{where}: roi shape {self.roi.shape} does not match image shape {spatial}")
        return self
