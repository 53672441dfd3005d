"""medseg: medical image segmentation with Lightning and Hydra.

Importing the package sets ``NO_ALBUMENTATIONS_UPDATE=1`` (albumentations otherwise checks
PyPI for updates on import, which waits and warns on machines without network).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from medseg import _resolvers  # noqa: E402,F401  (config resolvers: medseg_cwd, medseg_under_run)

__version__ = "0.1.0"

import importlib  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

#: subpackages reachable as attributes (``medseg.metrics.dice``), imported on first access: torch,
#: Lightning and MONAI stay out of ``import medseg``
_SUBPACKAGES = ("callbacks", "data", "errors", "inference", "losses", "metrics", "models", "optim", "utils")
_EXPORTS = {
    "SegmentationModule": "medseg.module",
    "Task": "medseg.tasks",
    "Case": "medseg.data.case",
    "SegmentationDataModule": "medseg.data.datamodule",
    "MedsegError": "medseg.errors",
    "ConfigError": "medseg.errors",
    "DataError": "medseg.errors",
    "CheckpointError": "medseg.errors",
    "DatabaseError": "medseg.errors",
}
__all__ = [
    "Case", "CheckpointError", "ConfigError", "DataError", "DatabaseError", "MedsegError",
    "SegmentationDataModule", "SegmentationModule", "Task", "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"medseg.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'medseg' has no attribute {name!r}")


if TYPE_CHECKING:
    from medseg.data.case import Case
    from medseg.data.datamodule import SegmentationDataModule
    from medseg.errors import CheckpointError, ConfigError, DatabaseError, DataError, MedsegError
    from medseg.module import SegmentationModule
    from medseg.tasks import Task
