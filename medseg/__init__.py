"""medseg: medical image segmentation with Lightning and Hydra.

Importing the package sets ``NO_ALBUMENTATIONS_UPDATE=1`` (albumentations otherwise checks
PyPI for updates on import, which waits and warns on machines without network), and filters two
library messages every command printed (each by its exact text, nothing else): Lightning's litlogger
advertisement and torch's deprecation of the ``LeafSpec`` check inside Lightning; and Lightning's
lines are printed once under Hydra's logging (see ``_LightningLogger``).
"""

import logging
import os
import re
import warnings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# --- library noise, filtered at the source (one place) ---
_LITLOGGER_TIP = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]"
warnings.filterwarnings("ignore", message=re.escape("`isinstance(treespec, LeafSpec)` is deprecated"),
                        category=FutureWarning)


class _LightningLogger(logging.Logger):
    """``lightning`` (the package) gives its logger a console handler on import ("INFO: ..." on stderr) and
    lets it propagate: under Hydra's logging every Lightning line came twice. As ``lightning.pytorch``
    already does, that handler is skipped when the root logger has handlers (Hydra's, which print it)."""

    def addHandler(self, hdlr: logging.Handler) -> None:  # noqa: N802 (logging's name)
        if type(hdlr) is logging.StreamHandler and logging.getLogger().handlers:
            return
        super().addHandler(hdlr)


if not isinstance(logging.Logger.manager.loggerDict.get("lightning"), logging.Logger):  # not imported yet
    _default_class = logging.getLoggerClass()
    logging.setLoggerClass(_LightningLogger)
    logging.getLogger("lightning")
    logging.setLoggerClass(_default_class)
# the litlogger advertisement: a record of Lightning's rank-zero logger, dropped by its exact opening text
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith(_LITLOGGER_TIP))

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
