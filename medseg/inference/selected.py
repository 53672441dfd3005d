"""Apply a pipeline chosen by ``medseg-select`` (``selection.json``) to new predictions: weighted mean
of the members' probabilities, temperature scaling of its logits, per-class thresholds, per-class
connected-component postprocessing. ``medseg-predict selection=<selection.json>`` calls it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from medseg.errors import ConfigError
from medseg.inference.ensemble import combine
from medseg.inference.postprocess import check_rules, postprocess
from medseg.tasks import Task, discretize


@dataclass
class Selection:
    kind: str
    class_names: list[str]
    members: list[Path]
    weights: list[float]
    temperature: float
    thresholds: list[float] | None
    rules: list[dict]

    @classmethod
    def load(cls, path: str | Path) -> Selection:
        path = Path(path).expanduser()
        try:
            spec = json.loads(path.read_text())
            sel = cls(spec["task"]["kind"], list(spec["task"]["class_names"]),
                      [Path(m["path"]) for m in spec["members"]], [float(m["weight"]) for m in spec["members"]],
                      float(spec.get("temperature", 1.0)), spec.get("thresholds"),
                      list(spec.get("postprocessing") or [{"rule": "none"}] * len(spec["task"]["class_names"])))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"selection={path}: not a readable selection.json from medseg-select ({exc})") from exc
        sel.rules = check_rules(sel.rules, sel.class_names, f"selection={path}: postprocessing")
        if not sel.members or sel.temperature <= 0:
            raise ConfigError(f"selection={path}: invalid pipeline ({len(sel.members)} members, "
                              f"temperature {sel.temperature})")
        return sel

    def check_task(self, task: Task, where: str) -> None:
        if (task.kind, list(task.class_names)) != (self.kind, self.class_names):
            raise ConfigError(f"{where}: segments {task.kind} {task.class_names}, the selection was made for "
                              f"{self.kind} {self.class_names}")

    def combine(self, member_probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Weighted mean of the members' probabilities ``(C, ...)``, then temperature scaling."""
        p = combine(list(member_probs), "mean", weights=self.weights) if len(member_probs) > 1 else member_probs[0]
        if self.temperature == 1.0:
            return p.float()
        q = p.float().clamp(1e-7, 1 - 1e-7)
        if self.kind == "multiclass":
            return torch.softmax(q.log() / self.temperature, dim=0)
        return torch.sigmoid((q.log() - (-q).log1p()) / self.temperature)

    def decide(self, probs: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities ``(C, ...)`` -> postprocessed boolean ``(K, ...)``: the selection's
        thresholds (:func:`medseg.tasks.discretize`, as medseg-select scored them), then its rules."""
        return postprocess(discretize(self.kind, probs, self.thresholds or None).cpu(), self.rules)
