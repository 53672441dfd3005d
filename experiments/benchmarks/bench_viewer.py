"""medseg-view: time to first paint of a 2048x2048 29-class case view, and the server's memory while
browsing 100 cases.

Set-up (written under ``--work``, reused when it is already there):

* a synthetic hand-bone dataset in the real layout (``medseg.data.synth.handbone``), ``--n-cases``
  radiographs of ``--size`` pixels with 29 overlapping bone classes;
* one ``medseg-train debug=smoke`` run on it (a small U-Net, base 4, depth 2, 256x256 patches, one
  epoch) with fixed splits of 6 radiographs so training stays small; it evaluates its 2 test cases;
* the run's test evaluation saves its 2 test cases' masks (``predictions/<case>.npz``): their cold
  first paint reads them; the same case under the browse listing below has no saved mask and is
  predicted on demand;
* ``<run>/eval/browse/per_image.csv``: a list of all ``--n-cases`` case ids written by this script
  (no scores, ``dice`` empty) so that the viewer offers them all; their images and ground truth
  are read by the run's reader and their predictions computed on demand from the best checkpoint,
  exactly as for any run without saved predictions.

Measured, with ``medseg-view`` started as a user starts it and Debian's chromium (Playwright,
headless):

* time to first paint: ``performance.mark("case-painted")`` set by the page once the case view is
  drawn, read as milliseconds since navigation start (page load, metadata, the arrays, decoding and
  composing the 2048x2048 overlay). *Cold*: the server reads the case and predicts it first;
  *warm*: the case view is in the server's cache (the same case opened again in a fresh tab);
* memory: the server process's resident set (``VmRSS``) after opening each of the ``--n-cases``
  case views one after the other in the browser, and its peak (``VmHWM``), with the default
  ``--cache-mb 512``.

Run:  python experiments/benchmarks/bench_viewer.py    (about 15-20 minutes on 2 shared CPU cores;
      ``--n-cases 8 --repeats 2 --first-paint-only`` for the first paint alone, about 5 minutes with
      the set-up, printed only). Not a test: the times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import REPO, header  # noqa: E402

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
SECTION = "7. Viewer: medseg-view first paint and memory"


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1",
                OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))


def make_run(work: Path, n_cases: int, size: int) -> tuple[Path, list[str]]:
    from medseg.data.formats.handbone import HandBoneReader
    from medseg.data.synth.handbone import write_handbone

    root = work / "data" / "handbone"
    if not (root / "train").is_dir():
        t0 = time.perf_counter()
        write_handbone(root, n_train=(n_cases + 1) // 2, n_test=0, size=size, seed=7)
        print(f"dataset: {n_cases} radiographs of {size}x{size} in {time.perf_counter() - t0:.0f} s", flush=True)
    ids = HandBoneReader(root).list_cases("train")[:n_cases]
    run = work / "run"
    if not (run / "per_image.csv").is_file():
        splits = work / "splits.json"
        splits.write_text(json.dumps({"train": ids[:4], "val": ids[4:5], "test": ids[5:7]}))
        cmd = [sys.executable, "-m", "medseg.cli.train", "debug=smoke", "data=handbone_synth",
               f"data.root={root}", "data.synthesize=null", f"+data.splits={splits}", "data.patch_size=[256,256]",
               "data.samples_per_epoch=8", "data.batch_size=2", "model.base_channels=4", "model.depth=2",
               "trainer.max_epochs=1", f"hydra.run.dir={run}"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"training failed:\n{proc.stderr[-3000:]}")
        print(f"run: trained and evaluated in {time.perf_counter() - t0:.0f} s", flush=True)
    browse = run / "eval" / "browse"
    browse.mkdir(parents=True, exist_ok=True)
    (browse / "per_image.csv").write_text("case_id,dice\n" + "".join(f"{c},\n" for c in ids))
    return run, ids


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) / 1024
    return get("VmRSS"), get("VmHWM")


def first_paint(browser, url: str) -> float:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector(".viewer[data-ready='1'], #page-error", timeout=300_000)
    if page.locator("#page-error").count():
        raise RuntimeError(f"{url}: {page.inner_text('#page-error')}")
    ms = page.evaluate("performance.getEntriesByName('case-painted')[0].startTime")
    page.close()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    return float(ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(REPO / "outputs" / "bench_viewer"))
    ap.add_argument("--n-cases", type=int, default=100)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--results", default=str(HERE / "results.md"))
    ap.add_argument("--first-paint-only", action="store_true",
                    help="measure first paint only (no 100-case memory trace); results.md is not rewritten")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    run, ids = make_run(work, args.n_cases, args.size)
    scored = ids[5:7]  # the run's test cases (scored by its evaluation)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "medseg.cli.view", str(run), str(run / "eval" / "browse"),
                               "--port", str(port)],
                              cwd=work, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while "serving on" not in (line := server.stdout.readline()):
            if not line:
                sys.exit("medseg-view did not start")
        base = f"http://127.0.0.1:{port}"
        import httpx

        models = {m["name"]: m["id"] for m in httpx.get(f"{base}/api/models", timeout=60).json()["models"]}
        run_id, browse_id = models["run"], models["browse"]
        rss0, _ = rss_mb(server.pid)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=FLAGS)
            cold, warm = [], []
            # cold: the run's test cases, whose masks its evaluation saved (predictions/<case>.npz)
            for cid in scored[: args.repeats]:
                cold.append(first_paint(browser, f"{base}/#/case/{run_id}/{cid}"))
            # cold without a saved mask: the same case under the browse listing, predicted on demand
            demand = [first_paint(browser, f"{base}/#/case/{browse_id}/{scored[0]}")]
            for _ in range(args.repeats):
                warm.append(first_paint(browser, f"{base}/#/case/{run_id}/{scored[0]}"))
            print(f"first paint cold (saved prediction) {cold} ms, cold (predicted on demand) {demand} ms, "
                  f"warm {warm} ms", flush=True)
            sizes = [p.stat().st_size for p in sorted((run / "predictions").glob("*.npz"))]
            print(f"saved predictions: {len(sizes)} files, {[round(s / 1e6, 3) for s in sizes]} MB", flush=True)
            if args.first_paint_only:
                browser.close()
                return
            trace = []
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            t0 = time.perf_counter()
            for i, cid in enumerate(ids):
                page.goto(f"{base}/#/case/{browse_id}/{cid}")
                page.wait_for_function("(cid) => document.querySelector(\".viewer[data-ready='1']\") "
                                       "&& document.querySelector('h1').textContent.includes(cid)", arg=cid,
                                       timeout=300_000)
                trace.append(rss_mb(server.pid)[0])
                if (i + 1) % 10 == 0:
                    print(f"{i + 1} cases: RSS {trace[-1]:.0f} MB", flush=True)
            browse_s = time.perf_counter() - t0
            browser.close()
        rss_end, hwm = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    n = len(ids)
    marks = [m for m in (1, 10, 25, 50, 75, n) if m <= n]
    lines = [header(SECTION),
             f"`python experiments/benchmarks/bench_viewer.py --n-cases {n} --size {args.size}`; the machine was "
             "shared with other engineers' jobs while it ran, so the times are indicative; the ratios and the "
             "memory trace come from the same run.", "",
             f"Case: synthetic hand radiograph {args.size}x{args.size}, 29 overlapping bone classes, prediction of a "
             "small U-Net (base 4, depth 2, 256x256 sliding windows): the mask its test evaluation saved, or "
             "computed on demand from the best checkpoint. "
             "First paint = `performance.mark` when the case view is drawn, in ms since navigation start "
             "(headless chromium, one tab per measurement).", "",
             "| first paint of the case view | median ms | all runs (ms) |", "|---|---|---|",
             f"| cold: server reads the case and its saved mask (`predictions/<case>.npz`) | "
             f"{statistics.median(cold):.0f} | {', '.join(f'{x:.0f}' for x in cold)} |",
             f"| cold, no saved mask: server reads the case and predicts it | {statistics.median(demand):.0f} | "
             f"{', '.join(f'{x:.0f}' for x in demand)} |",
             f"| warm: case view in the server's cache | {statistics.median(warm):.0f} | "
             f"{', '.join(f'{x:.0f}' for x in warm)} |", "",
             f"Memory of the server process (resident set) while opening {n} case views one after the other "
             f"in the browser ({browse_s / n:.1f} s per case on average, prediction included), cache limit 512 MB:", "",
             "| after | " + " | ".join(f"{m} cases" for m in marks) + " | peak (VmHWM) |",
             "|---|" + "---|" * (len(marks) + 1),
             f"| RSS MB (start {rss0:.0f}) | " + " | ".join(f"{trace[m - 1]:.0f}" for m in marks)
             + f" | {hwm:.0f} |", ""]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.results), text)


def write_section(path: Path, text: str) -> None:
    """Replace this benchmark's section of results.md (or append it)."""
    old = path.read_text() if path.is_file() else ""
    start = old.find(f"## {SECTION}")
    if start >= 0:
        end = old.find("\n## ", start + 1)
        old = old[:start] + (old[end + 1:] if end >= 0 else "")
    from medseg.utils.io import write_text_atomic

    write_text_atomic(path, old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
