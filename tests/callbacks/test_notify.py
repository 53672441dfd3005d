"""Webhook messages reach a local HTTP server (127.0.0.1 only); a dead webhook never fails the run."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from medseg.callbacks.notify import WebhookNotifier
from medseg.pipelines.train import train


@pytest.fixture
def webhook():
    """A local webhook: yields ``(url, received)``; ``received`` collects the posted JSON bodies."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def dead_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def run_overrides(tiny_drive, url):
    return ["debug=smoke", "data=drive", f"data.root={tiny_drive}", "model.base_channels=4",
            "data.samples_per_epoch=8", "data.baseline=null", "callbacks=notify", f"callbacks.notify.url={url}"]


def test_finished_run_posts_its_scores(tiny_drive, train_cfg, webhook):
    url, received = webhook
    cfg, run_dir = train_cfg(run_overrides(tiny_drive, url))
    results = train(cfg, run_dir)
    assert len(received) == 1
    text = received[0]["text"]
    assert "train finished" in text and f"test/dice {results['test/dice']:.4f}" in text and str(run_dir) in text


def test_dead_webhook_does_not_fail_training(tiny_drive, train_cfg, caplog):
    cfg, run_dir = train_cfg(run_overrides(tiny_drive, dead_url()))
    results = train(cfg, run_dir)
    assert "test/dice" in results and (run_dir / "report.md").is_file()
    assert "not reached" in caplog.text


def test_failures_and_pruned_trials_post_only_when_asked(webhook):
    url, received = webhook
    trainer = SimpleNamespace(is_global_zero=True)
    WebhookNotifier(url, name="hb", events=["fail"]).on_exception(trainer, None, RuntimeError("out of memory"))
    assert received[-1] == {"text": ":x: hb failed: RuntimeError: out of memory"}

    class TrialPruned(Exception):
        pass

    WebhookNotifier(url, name="hb", events=["fail"]).on_exception(trainer, None, TrialPruned("epoch 3"))
    assert len(received) == 1  # pruned is not a failure, and was not asked for
    WebhookNotifier(url, name="hb", events=["pruned"]).on_exception(trainer, None, TrialPruned("epoch 3"))
    assert received[-1]["text"].endswith("hb: epoch 3")
    WebhookNotifier(None).on_exception(trainer, None, RuntimeError("x"))  # no URL: nothing, no error
    assert len(received) == 2
    with pytest.raises(ValueError, match="unknown events"):
        WebhookNotifier(url, events=["done"])
