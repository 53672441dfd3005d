"""Two medseg trainings side by side vs one alone: per-run throughput as a share of the solo run's,
old default (every run takes all CPUs, float32) vs ``trainer.threads: auto`` (and the rest of the
speed policy).

Each training is a ``python -m medseg.cli.train experiment=drive_unet`` subprocess on synthetic DRIVE
data (validation off, ``evaluate=false``) with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` removed from
its environment (a user's ``OMP_NUM_THREADS`` would win over ``auto``). The two runs of a pair start a
second apart; a run's throughput is the training images/s of its epochs that lie entirely inside the
time both ran (its first epoch excluded: warm-up). Each arm has its own registry of live runs
(``MEDSEG_RUNTIME_DIR``); the old arm's runs do not see each other (as before the registry existed).
Phases are interleaved: solo old, solo new, pair old, pair new (x repeats).

    python experiments/benchmarks/bench_concurrency.py [--quick] [--out FILE]

Figures from a shared machine are noisy; compare the shares measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import lightning as L  # noqa: E402
from common import REPO, header  # noqa: E402

OLD = ["trainer.precision=32-true", "module.channels_last=false", "module.compile=false", "data.num_workers=0"]
NEW = ["trainer.precision=auto", "module.channels_last=auto", "module.compile=auto", "data.num_workers=auto",
       "trainer.threads=auto"]


class EpochClock(L.Callback):
    """Writes ``[[start, end], ...]`` (``time.time()``) of every training epoch to ``path`` as JSON."""

    def __init__(self, path: str) -> None:
        self.path, self.epochs, self.t = Path(path), [], None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.t = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append([self.t, time.time()])
        self.path.write_text(json.dumps({"epochs": self.epochs, "threads": _threads()}))


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _launch(tag: str, policy: list[str], work: Path, registry: Path, epochs: int, samples: int,
            cpus: int) -> tuple[subprocess.Popen, Path]:
    clock = work / f"{tag}.json"
    clock.unlink(missing_ok=True)
    extra = [f"trainer.threads={cpus}"] if policy is OLD else []
    args = [sys.executable, "-m", "medseg.cli.train", "experiment=drive_unet", f"paths.data_dir={work / 'data'}",
            "data.synthesize.n_train=8", "data.synthesize.n_test=2", f"trainer.max_epochs={epochs}",
            f"data.samples_per_epoch={samples}", "+trainer.limit_val_batches=0", "evaluate=false",
            "trainer.deterministic=false", f"hydra.run.dir={work / 'runs' / tag}",
            "+callbacks.epoch_clock._target_=bench_concurrency.EpochClock",
            f"+callbacks.epoch_clock.path={clock}", *policy, *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]), MEDSEG_RUNTIME_DIR=str(registry),
               NO_ALBUMENTATIONS_UPDATE="1")
    log = open(work / f"{tag}.log", "w")
    return subprocess.Popen(args, cwd=str(work), env=env, stdout=log, stderr=subprocess.STDOUT), clock


def _wait(procs: list[subprocess.Popen], work: Path, tags: list[str]) -> None:
    for p, tag in zip(procs, tags):
        if p.wait() != 0:
            tail = (work / f"{tag}.log").read_text()[-2000:]
            raise SystemExit(f"bench_concurrency: run {tag} failed (exit {p.returncode}):\n{tail}")


def _rate(epochs: list[list[float]], samples: int, window: tuple[float, float] | None) -> tuple[float, int]:
    """Images/s over the epochs after the first (inside ``window`` when given); and how many counted."""
    chosen = [e for e in epochs[1:] if window is None or (e[0] >= window[0] and e[1] <= window[1])]
    if not chosen:
        chosen = epochs[1:] or epochs
    return samples / statistics.median(e[1] - e[0] for e in chosen), len(chosen)


def phase(kind: str, policy: list[str], work: Path, epochs: int, samples: int, cpus: int, n: int) -> dict:
    registry = Path(tempfile.mkdtemp(dir=work, prefix="registry-"))
    procs, clocks, tags = [], [], []
    for i in range(n):
        tag = f"{kind}-{'old' if policy is OLD else 'new'}-{i}-{time.monotonic_ns()}"
        own = registry / str(i) if policy is OLD else registry  # old: the runs do not see each other
        p, c = _launch(tag, policy, work, own, epochs, samples, cpus)
        procs.append(p)
        clocks.append(c)
        tags.append(tag)
        time.sleep(1.0)
    _wait(procs, work, tags)
    runs = [json.loads(c.read_text()) for c in clocks]
    window = None
    if n > 1:
        window = (max(r["epochs"][0][0] for r in runs), min(r["epochs"][-1][1] for r in runs))
    rates = [_rate(r["epochs"], samples, window) for r in runs]
    return {"rates": [r for r, _ in rates], "counted": [k for _, k in rates], "threads": [r["threads"] for r in runs]}


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="about a minute: short runs, one repeat")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--out", type=Path, help="write the Markdown section to this file (atomically)")
    args = p.parse_args(argv)
    from medseg.utils.runtime import available_cpus

    cpus = available_cpus()
    epochs, samples = (2, 48) if args.quick else (6, 512)
    repeats = args.repeats or (1 if args.quick else 2)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for _ in range(repeats):
            for kind, policy, n in (("solo", OLD, 1), ("solo", NEW, 1), ("pair", OLD, 2), ("pair", NEW, 2)):
                key = f"{kind} {'old' if policy is OLD else 'new'}"
                results.setdefault(key, []).append(phase(kind, policy, work, epochs, samples, cpus, n))
                print(f"[bench_concurrency] {key}: {results[key][-1]}", flush=True)
    lines = [header("Two trainings side by side vs one alone (DRIVE recipe, cpu)"),
             f"{cpus} CPUs available to this process; {repeats} repeat(s); {epochs} epochs of {samples} patches "
             "per run. Shared machine: compare the shares, not the images/s.", "",
             "| policy | solo images/s | each of two side by side, images/s | share of solo (each) | threads (solo; pair) |",
             "|---|---|---|---|---|"]
    for arm in ("old", "new"):
        solo = statistics.median(r for ph in results[f"solo {arm}"] for r in ph["rates"])
        pair = [r for ph in results[f"pair {arm}"] for r in ph["rates"]]
        shares = ", ".join(f"{100 * r / solo:.0f} %" for r in pair)
        threads = f"{results[f'solo {arm}'][0]['threads'][0]}; " + "/".join(
            str(t) for t in results[f"pair {arm}"][0]["threads"])
        label = "old default (all CPUs each, float32)" if arm == "old" else "threads: auto (speed policy)"
        lines.append(f"| {label} | {solo:.1f} | {', '.join(f'{r:.1f}' for r in pair)} | {shares} | {threads} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from medseg.utils.io import write_text_atomic

        write_text_atomic(args.out, text)
    return text


if __name__ == "__main__":
    main()
