"""Metrics of one case as configurable objects: ``conf/metrics/*.yaml`` instantiates them.

A :class:`CaseMetric` scores one labelled case: ``metric(pred, target, *, probs=None, roi=None,
spacing=None) -> {name: np.ndarray (K,)}`` with a boolean prediction and target ``(K, *spatial)``
(one map per scored class), the foreground probabilities ``(K, *spatial)``, the region of interest
``(*spatial)`` and the voxel spacing. ``names`` says which columns it fills; ``tasks`` the task kinds
(``binary``, ``multilabel``, ``multiclass``) it applies to (``None``: all). A new metric is one class
here (or anywhere importable) and one ``conf/metrics/<name>.yaml``.

The pipelines turn a config into objects with :func:`metrics_from_config` (the ``metrics`` group;
``metrics=[hd95]`` on the command line keeps only HD95, ``metrics=[]`` only the overlap metrics, which
are always computed) and score with :func:`compute_case_metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from medseg.metrics._arrays import ArrayLike, as_tensor
from medseg.metrics.image import auc_roc, ssim
from medseg.metrics.overlap import METRIC_NAMES, overlap_metrics
from medseg.metrics.surface import SURFACE_METRIC_NAMES, surface_metrics
from medseg.metrics.topology import TOPOLOGY_METRIC_NAMES, topology_metrics

Spacing = Sequence[float] | float | None
#: the metrics selectable by name besides the overlap ones (``metrics=(...)`` in the Python API)
EXTRA_METRIC_NAMES = ("auc", "ssim", "hd95", "nsd", *TOPOLOGY_METRIC_NAMES)


@runtime_checkable
class CaseMetric(Protocol):
    """One or more per-class metrics of a labelled case (see the module docstring)."""

    names: tuple[str, ...]
    tasks: tuple[str, ...] | None

    def __call__(
        self, pred: ArrayLike, target: ArrayLike, *, probs: ArrayLike | None = None,
        roi: ArrayLike | None = None, spacing: Spacing = None,
    ) -> dict[str, np.ndarray]: ...


def _tasks(tasks: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if tasks is None else tuple(tasks)


class OverlapMetrics:
    """Dice, IoU, accuracy, precision, recall, specificity, F1 (:mod:`medseg.metrics.overlap`)."""

    def __init__(self, names: Iterable[str] = METRIC_NAMES, tasks: Iterable[str] | None = None) -> None:
        self.names, self.tasks = tuple(names), _tasks(tasks)
        unknown = set(self.names) - set(METRIC_NAMES)
        if unknown:
            raise ValueError(f"unknown overlap metrics {sorted(unknown)}; choose from {list(METRIC_NAMES)}")

    def __call__(self, pred: ArrayLike, target: ArrayLike, *, probs: ArrayLike | None = None,
                 roi: ArrayLike | None = None, spacing: Spacing = None) -> dict[str, np.ndarray]:
        r = as_tensor(roi)[None] if roi is not None else None
        out = overlap_metrics(as_tensor(pred)[None], as_tensor(target)[None], roi=r)
        return {k: out[k][0].cpu().numpy() for k in self.names}


class _ProbabilityMetric:
    name = ""

    def __init__(self, tasks: Iterable[str] | None = None) -> None:
        self.names: tuple[str, ...] = (self.name,)
        self.tasks = _tasks(tasks)

    def _one(self, probs: ArrayLike, target: ArrayLike, roi: ArrayLike | None) -> float:
        raise NotImplementedError

    def __call__(self, pred: ArrayLike, target: ArrayLike, *, probs: ArrayLike | None = None,
                 roi: ArrayLike | None = None, spacing: Spacing = None) -> dict[str, np.ndarray]:
        if probs is None:
            raise ValueError(f"metric {self.name!r} needs probabilities (probs=...)")
        p, t = as_tensor(probs).float(), as_tensor(target)
        r = as_tensor(roi) if roi is not None else None
        return {self.name: np.array([self._one(p[k], t[k], r) for k in range(p.shape[0])])}


class AUC(_ProbabilityMetric):
    """Area under the ROC curve inside the ROI (:func:`medseg.metrics.image.auc_roc`)."""

    name = "auc"

    def _one(self, probs: ArrayLike, target: ArrayLike, roi: ArrayLike | None) -> float:
        return auc_roc(probs, target, roi=roi)


class SSIM(_ProbabilityMetric):
    """Structural similarity of probabilities and target (:func:`medseg.metrics.image.ssim`)."""

    name = "ssim"

    def _one(self, probs: ArrayLike, target: ArrayLike, roi: ArrayLike | None) -> float:
        return ssim(probs, target, roi=roi)


class SurfaceMetrics:
    """HD95 and/or NSD at ``tolerance`` mm (:mod:`medseg.metrics.surface`); asking for both costs one
    distance computation per class."""

    def __init__(self, names: Iterable[str] = SURFACE_METRIC_NAMES, tolerance: float = 1.0,
                 percentile: float = 95.0, tasks: Iterable[str] | None = None) -> None:
        self.names, self.tasks = tuple(names), _tasks(tasks)
        self.tolerance, self.percentile = float(tolerance), float(percentile)
        unknown = set(self.names) - set(SURFACE_METRIC_NAMES)
        if unknown:
            raise ValueError(f"unknown surface metrics {sorted(unknown)}; choose from {list(SURFACE_METRIC_NAMES)}")

    def __call__(self, pred: ArrayLike, target: ArrayLike, *, probs: ArrayLike | None = None,
                 roi: ArrayLike | None = None, spacing: Spacing = None) -> dict[str, np.ndarray]:
        r = as_tensor(roi)[None] if roi is not None else None
        out = surface_metrics(as_tensor(pred)[None], as_tensor(target)[None], roi=r, spacing=spacing,
                              tolerance=self.tolerance, percentile=self.percentile)
        return {k: out[k][0].numpy() for k in self.names}


class TopologyMetrics:
    """clDice and the Betti-0 / Betti-1 number errors of thin structures (:mod:`medseg.metrics.topology`:
    definitions there and in docs/metrics.md); ``spatial_dims`` limits them to 2D images by default
    (3D skeletonisation of a whole volume costs seconds per case)."""

    def __init__(self, names: Iterable[str] = TOPOLOGY_METRIC_NAMES, tasks: Iterable[str] | None = None,
                 spatial_dims: Iterable[int] | None = (2,)) -> None:
        self.names, self.tasks = tuple(names), _tasks(tasks)
        self.spatial_dims = None if spatial_dims is None else tuple(int(d) for d in spatial_dims)
        unknown = set(self.names) - set(TOPOLOGY_METRIC_NAMES)
        if unknown:
            raise ValueError(f"unknown topology metrics {sorted(unknown)}; choose from {list(TOPOLOGY_METRIC_NAMES)}")

    def __call__(self, pred: ArrayLike, target: ArrayLike, *, probs: ArrayLike | None = None,
                 roi: ArrayLike | None = None, spacing: Spacing = None) -> dict[str, np.ndarray]:
        p = as_tensor(pred)
        if self.spatial_dims is not None and p.ndim - 1 not in self.spatial_dims:
            return {k: np.full(p.shape[0], np.nan) for k in self.names}
        out = topology_metrics(p.cpu().numpy(), as_tensor(target).cpu().numpy(),
                               roi=None if roi is None else as_tensor(roi).cpu().numpy())
        return {k: np.asarray(out[k], dtype=float) for k in self.names}


def default_case_metrics(nsd_tolerance: float = 1.0) -> list[CaseMetric]:
    """The default selection (``conf/metrics/default.yaml``): overlap metrics always; AUC and SSIM,
    the vessel predecessor projects' metrics, for binary tasks only (on 29 hand-bone classes at 2048x2048 they would
    cost about a minute per image on a CPU core); HD95 and NSD for every task; clDice and the Betti
    errors (thin-structure topology) for binary 2D tasks."""
    return [OverlapMetrics(), AUC(tasks=("binary",)), SSIM(tasks=("binary",)),
            SurfaceMetrics(tolerance=nsd_tolerance), TopologyMetrics(tasks=("binary",))]


def metrics_by_name(names: Iterable[str], nsd_tolerance: float = 1.0) -> list[CaseMetric]:
    """Objects for metric names (any of ``auc, ssim, hd95, nsd, cldice, betti0_error, betti1_error``), for every task; unknown names are
    a ``ValueError``."""
    names = tuple(names)
    unknown = set(names) - set(EXTRA_METRIC_NAMES)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {list(EXTRA_METRIC_NAMES)}")
    out: list[CaseMetric] = []
    out += [AUC()] if "auc" in names else []
    out += [SSIM()] if "ssim" in names else []
    surface = tuple(n for n in SURFACE_METRIC_NAMES if n in names)
    out += [SurfaceMetrics(surface, tolerance=nsd_tolerance)] if surface else []
    topology = tuple(n for n in TOPOLOGY_METRIC_NAMES if n in names)
    out += [TopologyMetrics(topology)] if topology else []
    return out


def resolve_metrics(value: Any = None, nsd_tolerance: float = 1.0) -> list[CaseMetric]:
    """Metric objects from any accepted form, the overlap metrics first (always computed):

    * ``None``: :func:`default_case_metrics`;
    * a mapping of ``_target_`` nodes (the ``metrics`` config group, a ``DictConfig``): instantiated;
    * names (``("hd95", "nsd")``, ``()``): :func:`metrics_by_name`;
    * :class:`CaseMetric` objects: as they are.
    """
    if value is None:
        return default_case_metrics(nsd_tolerance)
    if isinstance(value, Mapping) or hasattr(value, "items"):
        from hydra.utils import instantiate

        items: list[Any] = [instantiate(node) for node in value.values() if node is not None]
    else:
        items = list(value)
    if items and all(isinstance(x, str) for x in items):
        items = metrics_by_name(items, nsd_tolerance)
    bad = [x for x in items if not isinstance(x, CaseMetric)]
    if bad:
        raise ValueError(f"not a metric (needs names, tasks and __call__): {bad[0]!r}")
    if not any("dice" in m.names for m in items):
        items.insert(0, OverlapMetrics())
    return items


def metrics_from_config(cfg: Any) -> list[CaseMetric]:
    """The metric objects a pipeline scores with, from its config's ``metrics`` group
    (``conf/metrics/``): an empty one (``metrics=[]``) leaves the overlap metrics only; a config
    without a ``metrics`` key (or ``null``) gets :func:`default_case_metrics`; a list of names (the
    form before the group existed) is accepted too. A bad entry is a ``ConfigError``."""
    from medseg.errors import ConfigError

    value = cfg.get("metrics") if hasattr(cfg, "get") else None
    try:
        return resolve_metrics(value, float(cfg.get("nsd_tolerance", 1.0) or 1.0))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"metrics: {exc}; the metric configs are in conf/metrics/") from exc


def applies(metric: CaseMetric, task_kind: str) -> bool:
    """Whether ``metric`` scores tasks of kind ``task_kind``."""
    return metric.tasks is None or task_kind in metric.tasks


def metric_names(metrics: Any, task_kind: str) -> tuple[str, ...]:
    """Columns the selection ``metrics`` (any form :func:`resolve_metrics` takes) fills for a task."""
    return tuple(n for m in resolve_metrics(metrics) if applies(m, task_kind) for n in m.names)


def compute_case_metrics(
    metrics: Iterable[CaseMetric], task_kind: str, *, pred: ArrayLike, target: ArrayLike,
    probs: ArrayLike | None = None, roi: ArrayLike | None = None, spacing: Spacing = None,
) -> dict[str, np.ndarray]:
    """``{name: (K,)}`` of every metric in ``metrics`` that applies to ``task_kind``, in order."""
    out: dict[str, np.ndarray] = {}
    for metric in metrics:
        if applies(metric, task_kind):
            out.update(metric(pred, target, probs=probs, roi=roi, spacing=spacing))
    return out
