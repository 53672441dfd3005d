"""Whole-image inference: inferers (:mod:`~medseg.inference.inferers`), TTA, post-processing, writers."""

from medseg.inference.inferers import (
    DEFAULT_SIZE_DIVISOR,
    PadToMultipleInferer,
    ResizeInferer,
    make_inferer,
    net_size_divisor,
    pad_run_crop,
)

__all__ = ["DEFAULT_SIZE_DIVISOR", "PadToMultipleInferer", "ResizeInferer", "make_inferer", "net_size_divisor",
           "pad_run_crop"]
