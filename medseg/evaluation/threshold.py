"""The decision threshold of an evaluation: fixed, the task's, or chosen on the validation split."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from medseg.data.case import Case
from medseg.errors import ConfigError
from medseg.evaluation.probs import ProbsFn, case_target, foreground_probs
from medseg.inference.postprocess import active_rules, postprocess
from medseg.metrics.threshold import best_threshold
from medseg.tasks import Task

log = logging.getLogger(__name__)


def choose_threshold(task: Task, probs_fn: ProbsFn, cases: Sequence[Case],
                     postprocessing: Sequence[dict] | None = None) -> tuple[float, float]:
    """The threshold maximising mean Dice on ``cases`` (binary / multi-label tasks) and that Dice;
    with ``postprocessing`` (one connected-component rule per class), the Dice of the post-processed
    masks, the decision :func:`~medseg.evaluation.threshold_decision` then applies."""
    rules = active_rules(postprocessing)
    after = (lambda pred: postprocess(pred.cpu(), rules)) if rules else None

    def gen():
        for c in cases:
            t = case_target(task, c)
            if t is not None:
                roi = torch.from_numpy(c.roi) if c.roi is not None else None
                yield foreground_probs(task, probs_fn(c)), t, roi
    return best_threshold(gen(), after=after)


def resolve_threshold(task: Task, probs_fn: ProbsFn, val_cases: Sequence[Case],
                      threshold: float | str | None,
                      postprocessing: Sequence[dict] | None = None) -> tuple[float, str | None]:
    """``(threshold, sentence for the report)`` for ``threshold``: a number, ``None`` (the task's) or
    ``"auto"`` (the one maximising mean Dice on ``val_cases``, of the masks after ``postprocessing``
    when given). Multi-class tasks take the arg-max: their threshold is unused and gets no sentence."""
    if threshold == "auto" and task.kind != "multiclass":
        if not val_cases:
            raise ConfigError("threshold=auto chooses the threshold on the validation images, and this run has "
                              "none (trained with data.val_fraction=0): give a number, e.g. threshold=0.5")
        thr, val_dice = choose_threshold(task, probs_fn, val_cases, postprocessing)
        log.info("eval.threshold=auto: %.2f (val Dice %.4f)", thr, val_dice)
        after = " after the post-processing" if active_rules(postprocessing) else ""
        return thr, (f"Threshold **{thr:.2f}** chosen on the validation split (mean Dice {val_dice:.4f} there"
                     f"{after}).")
    thr = task.threshold if threshold in (None, "auto") else float(threshold)
    return thr, (f"Threshold {thr:.2f} (fixed)." if task.kind != "multiclass" else None)
