"""Probability sources: ``case -> probabilities (C, *spatial)`` of one model (optionally with TTA).

One model, a model with test-time augmentation and an ensemble of models are all such functions,
so every entry point scores them with the same code (:func:`medseg.evaluation.scoring.score_case`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from medseg.data.case import Case
from medseg.inference.tta import tta_probs
from medseg.module import SegmentationModule
from medseg.tasks import Task

ProbsFn = Callable[[Case], torch.Tensor]


def model_probs(module: SegmentationModule, tta: bool | Mapping = False) -> ProbsFn:
    """``case -> probabilities (C, *spatial)`` of one model, with optional TTA (``True`` or
    ``{"flips": bool, "rot90": bool}``, a plain dict or a Hydra ``DictConfig``)."""
    opts = dict(tta) if isinstance(tta, Mapping) else {}

    @torch.no_grad()
    def probs(case: Case) -> torch.Tensor:
        module.eval()
        image = torch.from_numpy(case.image)[None].to(module.device)
        fn = lambda x: module.task.activation(module.predict_logits(x))  # noqa: E731
        out = tta_probs(fn, image, **opts) if tta else fn(image)
        return out[0].cpu()

    return probs


def foreground_probs(task: Task, probs: torch.Tensor) -> torch.Tensor:
    """Probabilities ``(C, ...)`` -> one map per scored class ``(K, ...)`` (multi-class drops background)."""
    return probs[1:] if task.kind == "multiclass" else probs


def case_target(task: Task, case: Case) -> torch.Tensor | None:
    """The boolean target ``(K, *spatial)`` of a labelled case, ``None`` without a label."""
    if case.mask is None:
        return None
    mask = torch.from_numpy(np.asarray(case.mask))[None]
    if task.kind == "multilabel":  # already (K, ...) multi-hot: no int64 copy (29 x 2048^2 would be 1 GB)
        return mask[0].bool()
    return task.target_to_binary(mask.long())[0]
