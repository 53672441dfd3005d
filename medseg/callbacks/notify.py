"""Post a short message to a webhook (Slack-compatible ``{"text": ...}`` JSON) when a run finishes or fails.

Posting happens in a daemon thread with a short timeout; an unreachable or failing webhook is logged as a
warning and never fails or stalls training (at most ``timeout`` seconds are waited at the very end, so the
message leaves before the process exits).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L

from medseg.callbacks.evaluation import EvaluationCallback

if TYPE_CHECKING:
    from medseg.evaluation import EvaluationTable

log = logging.getLogger(__name__)

EVENTS = ("finish", "fail", "pruned")


def _post(url: str, payload: Mapping, timeout: float) -> None:
    try:
        req = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except Exception as exc:  # noqa: BLE001  the webhook is a courtesy: never let it hurt the run
        log.warning("webhook %s not reached: %s", url.split("?")[0], exc)


def post_message(url: str, text: str, timeout: float = 2.0, wait: bool = True) -> threading.Thread:
    """Post ``{"text": text}`` to ``url`` from a daemon thread; with ``wait``, join it for at most
    ``timeout`` seconds. Never raises."""
    thread = threading.Thread(target=_post, args=(url, {"text": text}, timeout), name="medseg-webhook", daemon=True)
    thread.start()
    if wait:
        thread.join(timeout + 0.5)
    return thread


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
