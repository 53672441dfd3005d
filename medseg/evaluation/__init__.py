"""Scoring only: probability sources, the decision threshold, per-case metrics and the result table.

The data flow of every entry point: probability source (:func:`model_probs`, an ensemble) ->
:func:`evaluate_cases` / :func:`evaluate_sources` (each case through :func:`score_case`) ->
:class:`EvaluationTable` (``save``/``load``) -> a report in :mod:`medseg.report`. Each case's decision
is :func:`threshold_decision` (the threshold, then optional connected-component post-processing)
unless the caller gives another (a :class:`~medseg.inference.Selection`'s); the pooled counts follow it.
"""

from medseg.evaluation.notes import data_notes, roi_note
from medseg.evaluation.predictions import PREDICTIONS, load_prediction, save_prediction, save_probs
from medseg.evaluation.probs import ProbsFn, case_target, foreground_probs, model_probs
from medseg.evaluation.scoring import (
    Decide,
    TableBuilder,
    case_rows,
    default_metrics,
    evaluate_cases,
    evaluate_sources,
    score_case,
    threshold_decision,
)
from medseg.evaluation.table import EvaluationTable, metric_columns
from medseg.evaluation.threshold import choose_threshold, resolve_threshold

__all__ = [
    "PREDICTIONS", "Decide", "EvaluationTable", "ProbsFn", "TableBuilder", "case_rows", "case_target", "choose_threshold",
    "data_notes", "default_metrics", "evaluate_cases", "evaluate_sources", "foreground_probs",
    "load_prediction", "metric_columns", "model_probs", "resolve_threshold", "roi_note", "save_prediction",
    "save_probs", "score_case", "threshold_decision",
]
