"""Connected-component postprocessing of predicted masks, per class, in 2D and 3D.

Rules (one per class, as chosen by ``medseg-select`` on out-of-fold predictions):

* ``none``: keep the mask as predicted;
* ``largest``: keep only the largest connected component (one organ per image, e.g. a lung field);
* ``min_size``: remove components smaller than ``min_size`` pixels/voxels (full-resolution units).

Components use full connectivity (8 in 2D, 26 in 3D) through ``connected-components-3d``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cc3d
import numpy as np
import torch

from medseg.errors import ConfigError

RULES = ("none", "largest", "min_size")


def _labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    if mask.ndim not in (2, 3):
        raise ValueError(f"postprocessing takes 2D or 3D masks, got shape {mask.shape}")
    labels, n = cc3d.connected_components(np.ascontiguousarray(mask, dtype=bool),
                                          connectivity=8 if mask.ndim == 2 else 26, return_N=True)
    return labels, int(n)


def component_sizes(mask: np.ndarray) -> np.ndarray:
    """Sizes (pixels/voxels) of the connected components of one boolean mask."""
    labels, n = _labels(mask)
    return np.bincount(labels.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, dtype=np.int64)


def keep_largest(mask: np.ndarray) -> np.ndarray:
    labels, n = _labels(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def remove_small(mask: np.ndarray, min_size: float) -> np.ndarray:
    labels, n = _labels(mask)
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def apply_rule(mask: np.ndarray, rule: dict | None, area_scale: float = 1.0) -> np.ndarray:
    """Apply one class's rule ``{"rule": ..., "min_size": ...}`` to a boolean mask. ``min_size`` is in
    full-resolution units; ``area_scale`` (full-resolution pixels per pixel of ``mask``) converts it
    for masks on a downsampled grid."""
    rule = rule or {}
    kind = rule.get("rule", "none")
    if kind == "none":
        return mask.astype(bool)
    if kind == "largest":
        return keep_largest(mask)
    if kind == "min_size":
        return remove_small(mask, float(rule["min_size"]) / area_scale)
    raise ValueError(f"unknown postprocessing rule {kind!r}; choose from {RULES}")


def describe_rule(rule: dict) -> str:
    """A connected-component rule as the reports write it."""
    if rule["rule"] == "min_size":
        return f"remove components < {float(rule['min_size']):.0f} px"
    return {"largest": "keep largest component", "none": "none"}[rule["rule"]]


def describe_rules(class_names: Sequence[str], rules: Sequence[dict]) -> str:
    """Per-class rules in one line (``vessel: keep largest component; ...``), as reports state them."""
    return "; ".join(f"{c}: {describe_rule(r)}" for c, r in zip(class_names, rules))


def check_rules(rules: Any, class_names: Sequence[str], where: str = "postprocessing") -> list[dict]:
    """Per-class rules as a config or a ``selection.json`` gives them, checked: one rule per class in
    ``class_names`` (a list), or one rule for every class; a rule is a mapping ``{"rule": ..., "min_size":
    px}`` or just its name (``largest``, ``none``). Raises :class:`~medseg.errors.ConfigError` naming
    ``where`` (the key or file)."""
    if isinstance(rules, (str, Mapping)):
        rules = [rules] * len(class_names)
    if not isinstance(rules, Sequence) or len(rules) != len(class_names):
        raise ConfigError(f"{where}: give one rule for every class or one per class ({len(class_names)}: "
                          f"{list(class_names)}), got {rules!r}")
    out = []
    for name, rule in zip(class_names, rules):
        rule = {"rule": rule} if isinstance(rule, str) else dict(rule) if isinstance(rule, Mapping) else rule
        kind = rule.get("rule", "none") if isinstance(rule, dict) else None
        if kind not in RULES:
            raise ConfigError(f"{where}: class {name!r}: unknown rule {rule!r}; use one of {list(RULES)}, e.g. "
                              "{rule: min_size, min_size: 20}")
        if kind == "min_size":
            try:
                ok = float(rule["min_size"]) > 0
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                raise ConfigError(f"{where}: class {name!r}: rule min_size needs a positive min_size "
                                  f"(pixels/voxels), got {rule!r}")
        out.append(rule)
    return out


def active_rules(rules: Sequence[dict] | None) -> list[dict]:
    """``rules`` as a list when one of them changes a mask, else ``[]`` (all ``none``: nothing to apply)."""
    rules = list(rules or [])
    return rules if any((r or {}).get("rule", "none") != "none" for r in rules) else []


def postprocess(pred: torch.Tensor | np.ndarray, rules: Sequence[dict | None], area_scale: float = 1.0):
    """Apply per-class ``rules`` to a boolean prediction ``(K, *spatial)``; same type out."""
    arr = pred.numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if len(rules) != arr.shape[0]:
        raise ValueError(f"{len(rules)} postprocessing rules for {arr.shape[0]} classes")
    out = np.stack([apply_rule(arr[k], rules[k], area_scale) for k in range(arr.shape[0])])
    return torch.from_numpy(out) if isinstance(pred, torch.Tensor) else out
