"""``medseg-view`` as a user starts it: binds 127.0.0.1 by default and serves; bad arguments end with
one message and the error's exit status."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serves_on_loopback_by_default(tmp_path):
    folder = tmp_path / "scores"  # a metrics-only model: enough to serve the app
    folder.mkdir()
    (folder / "per_image.csv").write_text("case_id,dice\na,0.5\nb,0.75\n")
    port = _free_port()
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "medseg.cli.view", str(folder), "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "serving on" in line:
                break
        assert f"serving on http://127.0.0.1:{port}/" in "".join(lines), "".join(lines)
        body = httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=30).json()
        assert [m["name"] for m in body["models"]] == ["scores"] and body["models"][0]["can_predict"] is False
        assert body["models"][0]["mean"]["dice"] == 0.625
        # bound to loopback only: the port is not open on the machine's other addresses
        try:
            other = socket.gethostbyname(socket.gethostname())
        except OSError:
            other = None
        if other and not other.startswith("127."):
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((other, port)) != 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_missing_folder_and_bad_port_give_one_message(tmp_path):
    proc = run_cli("medseg.cli.view", [str(tmp_path / "nope")], cwd=tmp_path)
    assert proc.returncode == 3 and "folder not found" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("medseg.cli.view", [str(tmp_path), "--port", "70000"], cwd=tmp_path)
    assert proc.returncode == 2 and "--port 70000" in proc.stderr and "Traceback" not in proc.stderr
