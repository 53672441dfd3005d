"""The hook medseg's evaluator calls after scoring a run (Lightning's test loop is not used: full
images, sliding windows, TTA and ensembles have no single ``LightningModule`` test step)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L

if TYPE_CHECKING:  # the table type only: callbacks do not depend on the evaluator at run time
    from medseg.evaluation import EvaluationTable


class EvaluationCallback(L.Callback):
    """A Lightning callback that also hears about the test evaluation of ``medseg-train``.

    :func:`medseg.pipelines.train.train` calls :meth:`on_evaluation_end` on every trainer callback
    that is an instance of this class, once, on rank 0, after the best checkpoint was scored and
    ``per_image.csv`` / ``per_class.csv`` / ``report.md`` were written (also with ``evaluate: false``,
    then with ``table=None`` and only ``val/best_dice`` in ``results``)."""

    def on_evaluation_end(self, trainer: L.Trainer, run_dir: str | Path, results: Mapping[str, float],
                          table: EvaluationTable | None) -> None:
        """Called after the evaluation.

        Args:
            trainer: the trainer that fitted the model.
            run_dir: the run folder (tables, report and overlays are in it).
            results: what ``results.json`` will hold: ``test/<metric>`` means, ``threshold``,
                ``val/best_dice``.
            table: the scored test split, or ``None`` when the run was not evaluated.
        """
