"""Dataset fingerprint -> planned experiment (``medseg-plan``): :mod:`.fingerprint`, :mod:`.rules`;
the work behind the command is :func:`medseg.pipelines.plan.run_plan`."""

from medseg.plan.fingerprint import fingerprint, modality_guess, summary_lines
from medseg.plan.rules import Choice, Plan, StepModel, depth_for, measure_step, normalisation

__all__ = ["Choice", "Plan", "StepModel", "depth_for", "fingerprint", "measure_step", "modality_guess",
           "normalisation", "summary_lines"]
