""":class:`EvaluationTable`: the result of scoring a split, the one thing reports render."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseg.errors import DataError
from medseg.metrics.case import EXTRA_METRIC_NAMES
from medseg.metrics.overlap import METRIC_NAMES
from medseg.utils.io import save_with, write_json_atomic

PER_IMAGE, PER_CLASS, META = "per_image.csv", "per_class.csv", "evaluation.json"
#: dataset-level metrics, pooled over every ROI pixel of the split (binary tasks)
POOLED = "pooled.csv"


#: the pooled table's metric columns (``auc_error_bound`` travels with them)
POOLED_COLUMNS = ("f1", "sensitivity", "specificity", "accuracy", "auc")


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of a per-image table: the built-in ones in the reports' order, then any other
    numeric column (a metric added through ``conf/metrics/``)."""
    known = [m for m in (*METRIC_NAMES, *EXTRA_METRIC_NAMES) if m in df.columns]
    extra = [c for c in df.select_dtypes("number").columns if c not in known and c not in ("case_id", "class")]
    return known + extra


@dataclass
class EvaluationTable:
    """Per-case and per-class scores of one probability source on one split, with what a report
    says about them.

    Attributes:
        per_image: one row per case (index ``case_id``), metric means over classes.
        per_class: one row per case and class (columns ``case_id``, ``class``, metrics).
        split: the scored split.
        threshold: the decision threshold (binary / multi-label; the task's for multi-class).
        threshold_note: how the threshold was chosen (a sentence), if it applies.
        roi_note: where the metrics were computed (a sentence naming the dataset's ROI), if inside one.
        data_notes: fallbacks the reader took (``split: note``), e.g. an estimated field of view.
        source: what was scored (run folders, checkpoint, TTA, ensemble method): two tables with the
            same non-empty ``source`` and split are the same model (``medseg-report`` deduplicates them).
        pooled: dataset-level metrics (one row per class: F1, sensitivity, specificity, accuracy, AUC
            and the AUC's binning error bound) pooled over every ROI pixel of the split, the convention
            of the DRIVE / CHASE_DB1 / STARE papers' tables (:class:`medseg.metrics.PooledMetrics`);
            ``None`` where not computed (multi-class and multi-label tasks).
    """

    per_image: pd.DataFrame
    per_class: pd.DataFrame
    split: str = "test"
    threshold: float | None = None
    threshold_note: str | None = None
    roi_note: str | None = None
    data_notes: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    pooled: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None:  # kept on the frame too, as before (summary_dict reads it)
            self.per_image.attrs["threshold"] = float(self.threshold)

    @property
    def metrics(self) -> list[str]:
        return metric_columns(self.per_image)

    def summary(self, prefix: str = "test/") -> dict[str, float]:
        """Means over cases of each metric (``test/dice`` ...) and the threshold: ``results.json``."""
        out = {f"{prefix}{m}": float(np.nanmean(self.per_image[m])) for m in self.metrics}
        if self.pooled is not None:  # dataset-level: pooled over all ROI pixels (means over classes)
            out.update({f"{prefix}pooled_{m}": float(np.nanmean(self.pooled[m])) for m in POOLED_COLUMNS
                        if m in self.pooled})
        if self.threshold is not None:
            out["threshold"] = float(self.threshold)
        return out

    def identity(self) -> str | None:
        """A key naming the scored model (``None`` when the folder predates ``evaluation.json``)."""
        if not self.source:
            return None
        return json.dumps({"split": self.split, "threshold": self.threshold, **self.source}, sort_keys=True,
                          default=str)

    def save(self, out_dir: str | Path) -> Path:
        """``per_image.csv``, ``per_class.csv`` (the files ``medseg-report`` reads) and
        ``evaluation.json`` (split, threshold, notes, source), each written atomically."""
        out_dir = Path(out_dir)
        save_with(out_dir / PER_IMAGE, lambda p: self.per_image.to_csv(p, float_format="%.6f"))
        save_with(out_dir / PER_CLASS, lambda p: self.per_class.to_csv(p, index=False, float_format="%.6f"))
        thr = None if self.threshold is None or math.isnan(self.threshold) else float(self.threshold)
        if self.pooled is not None:
            pooled = self.pooled
            save_with(out_dir / POOLED, lambda p: pooled.to_csv(p, float_format="%.6f"))
        write_json_atomic(out_dir / META, {"split": self.split, "threshold": thr,
                                           "threshold_note": self.threshold_note, "roi_note": self.roi_note,
                                           "data_notes": list(self.data_notes), "source": self.source})
        return out_dir

    @classmethod
    def load(cls, folder: str | Path) -> EvaluationTable:
        """Read a folder written by :meth:`save`, or an older one with only the CSV files."""
        folder = Path(folder)
        path = folder / PER_IMAGE
        try:
            per_image = pd.read_csv(path, index_col=0)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{path}: unreadable per-image table ({exc})") from exc
        if "dice" not in per_image.columns:
            raise DataError(f"{path}: no 'dice' column")
        per_image.index = per_image.index.astype(str).rename("case_id")
        pc = folder / PER_CLASS
        per_class = pd.read_csv(pc) if pc.is_file() else pd.DataFrame()
        meta = _read_meta(folder / META)
        pp = folder / POOLED
        pooled = pd.read_csv(pp, index_col=0) if pp.is_file() else None
        return cls(per_image, per_class, pooled=pooled, split=meta.get("split", "test"), threshold=meta.get("threshold"),
                   threshold_note=meta.get("threshold_note"), roi_note=meta.get("roi_note"),
                   data_notes=list(meta.get("data_notes") or []), source=dict(meta.get("source") or {}))


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable evaluation metadata ({exc}); delete it or rerun the evaluation") from exc
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    return meta
