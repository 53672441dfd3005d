"""Post a short message to a webhook (Slack-compatible ``{"text": ...}`` JSON), never failing the caller.

Used by the run callback (:class:`medseg.callbacks.notify.WebhookNotifier`) and by the sweeper
(``hydra.sweeper.notify_url``); it lives here so that both import it downward.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Mapping

log = logging.getLogger(__name__)


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


__all__ = ["post_message"]
