"""The reader interface: one subclass per on-disk layout.

A reader lists and loads cases. It does not augment, cache or split beyond the splits the
dataset itself defines on disk.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from pathlib import Path

from medseg.data.case import Case
from medseg.errors import DataError


class SegmentationReader(ABC):
    """Base class for dataset readers.

    Attributes:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        class_names: names of the foreground classes (binary: one name).
        in_channels: channels of ``Case.image``.
        strict: raise on bad files (``True``) or warn and skip them (``False``).
    """

    task: str = "binary"
    class_names: tuple[str, ...] = ("foreground",)
    in_channels: int = 1
    spatial_dims: int = 2

    def __init__(self, root: str | Path, strict: bool = True) -> None:
        self.root = Path(root).expanduser()
        self.strict = strict
        if not self.root.exists():
            raise DataError(f"{self.root}: data.root does not exist")
        if not self.root.is_dir():
            raise DataError(f"{self.root}: data.root is not a folder")

    @abstractmethod
    def available_splits(self) -> list[str]:
        """Splits present on disk (e.g. ``["training", "test"]``)."""

    @abstractmethod
    def list_cases(self, split: str) -> list[str]:
        """Sorted case ids of ``split``."""

    @abstractmethod
    def load_case(self, case_id: str) -> Case:
        """Load one case as a validated :class:`Case`."""

    def group_of(self, case_id: str) -> str:
        """Grouping key for k-fold splits (patient, subject). Defaults to the case itself."""
        return case_id

    def has_labels(self, split: str) -> bool:
        return True

    def load_cases(self, case_ids: list[str]) -> list[Case]:
        """Load several cases; with ``strict=False`` bad ones are skipped with a warning."""
        cases = []
        for cid in case_ids:
            try:
                cases.append(self.load_case(cid))
            except DataError as exc:
                if self.strict:
                    raise
                warnings.warn(f"skipping case {cid}: {exc}", stacklevel=2)
        return cases

    def seen(self, limit: int = 8) -> str:
        """What the root holds, for "found nothing" messages: ``found ['a/', 'b.png', ...]``."""
        try:
            names = sorted(p.name + ("/" if p.is_dir() else "") for p in self.root.iterdir() if not p.name.startswith("."))
        except OSError:
            return "cannot list the folder"
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        return f"found {names[:limit]}{more}" if names else "the folder is empty"

    def bad(self, message: str) -> None:
        """Raise (strict) or warn (lenient) about a recoverable problem."""
        if self.strict:
            raise DataError(message)
        warnings.warn(message, stacklevel=3)
