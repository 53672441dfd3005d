"""Post a short message to a webhook (Slack-compatible ``{"text": ...}`` JSON) when a run finishes or fails.

Posting happens in a daemon thread with a short timeout; an unreachable or failing webhook is logged as a
warning and never fails or stalls training (at most ``timeout`` seconds are waited at the very end, so the
message leaves before the process exits).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L

from medseg.callbacks.evaluation import EvaluationCallback
from medseg.utils.webhook import post_message

if TYPE_CHECKING:
    from medseg.evaluation import EvaluationTable


EVENTS = ("finish", "fail", "pruned")


class WebhookNotifier(EvaluationCallback):
    """Args:
        url: the webhook URL (e.g. a Slack incoming webhook); ``None`` or empty disables the callback.
        name: what the message calls the run (the task name).
        events: events that post: ``finish`` (after evaluation), ``fail`` (an exception), ``pruned``
            (an Optuna trial stopped early).
        timeout: seconds for the HTTP request.
    """

    def __init__(self, url: str | None, name: str = "medseg run", events: Sequence[str] = ("finish", "fail"),
                 timeout: float = 2.0) -> None:
        unknown = set(events) - set(EVENTS)
        if unknown:
            raise ValueError(f"WebhookNotifier: unknown events {sorted(unknown)} (choose from {EVENTS})")
        self.url, self.name, self.events, self.timeout = url or None, name, set(events), float(timeout)
        self._t0 = time.monotonic()

    def _send(self, event: str, text: str) -> None:
        if self.url and event in self.events:
            post_message(self.url, text, self.timeout)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.monotonic()

    def on_evaluation_end(self, trainer: L.Trainer, run_dir: str | Path, results: Mapping[str, float],
                          table: EvaluationTable | None = None) -> None:
        if not trainer.is_global_zero:
            return
        took = (time.monotonic() - self._t0) / 60
        scores = ", ".join(f"{k} {v:.4f}" for k, v in results.items())
        self._send("finish", f":white_check_mark: {self.name} finished in {took:.1f} min: {scores or 'no scores'} "
                             f"({run_dir})")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero:
            return
        if type(exception).__name__ == "TrialPruned":
            self._send("pruned", f":scissors: {self.name}: {exception}")
        else:
            self._send("fail", f":x: {self.name} failed: {type(exception).__name__}: {exception}")
