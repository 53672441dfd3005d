"""Run the benchmarks and write ``experiments/benchmarks/results.md`` (``make bench``).

Sections, each measured in this run with its ratio against the reference in the same run:

1. framework overhead (``bench_overhead``: ``medseg-train`` epoch vs a bare PyTorch loop);
2. data loading (``bench_dataloading``: loader samples/s vs the model's step rate);
3. sliding-window inference (``bench_sliding_window``: ``Predictor`` vs MONAI);
4. metrics (``bench_metrics``: medseg vs MONAI and torchmetrics);
6. exported model on CPU (``bench_export``: PyTorch eager vs TorchScript vs ONNX Runtime, 2 threads);
5. quality per CPU minute on real DRIVE (``bench_quality``) - only with ``--quality-minutes N``:
   it is long (2 x N minutes) and needs ``shared/data/DRIVE``.

1-4 at the default arguments take under 15 minutes on 2 CPU cores, 6 about 5 more. The results file is written
atomically after every section, so an interrupted run keeps what it measured.

Run:  python experiments/benchmarks/run_all.py [--only overhead,sliding] [--quality-minutes 25] [--out FILE]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine, versions

from medseg.utils.io import write_text_atomic


def _overhead(device: str) -> str:
    import bench_overhead

    return bench_overhead.run(device=device)


def _dataloading(device: str) -> str:
    import bench_dataloading

    # fewer batches than the standalone default keep the whole of make bench under 15 minutes
    return bench_dataloading.run(batches=10, device=device)


def _sliding(device: str) -> str:
    import bench_sliding_window

    return bench_sliding_window.run(device=device)


def _metrics(device: str) -> str:
    import bench_metrics

    return bench_metrics.run()


def _export(device: str) -> str:
    import bench_export

    return bench_export.run(threads=2)  # CPU deployment: always the CPU, 2 threads


SECTIONS: dict[str, Callable[[str], str]] = {
    "overhead": _overhead, "dataloading": _dataloading, "sliding": _sliding, "metrics": _metrics,
    "export": _export,
}


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    ap.add_argument("--quality-minutes", type=float, default=None,
                    help="also run 5. quality per CPU minute on real DRIVE with this budget per recipe")
    ap.add_argument("--device", default="cpu", help="device for overhead, data loading and sliding window")
    ap.add_argument("--out", default=str(HERE / "results.md"))
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")

    started = time.perf_counter()
    command = "python experiments/benchmarks/run_all.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    head = ["# medseg benchmarks", "",
            f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {machine()}", f"- versions: {versions()}", f"- command: `{command.strip()}`", ""]
    sections: list[str] = []
    out = Path(args.out)

    def write(done: bool) -> None:
        total = f"- total time: {(time.perf_counter() - started) / 60:.1f} min" + ("" if done else " (running)")
        write_text_atomic(out, "\n".join([*head[:-1], total, "", *sections]) + "\n")

    for name in names:
        t0 = time.perf_counter()
        print(f"=== {name} ===", flush=True)
        sections.append(SECTIONS[name](args.device).rstrip() + f"\n\n_section time: {time.perf_counter() - t0:.0f} s_\n")
        write(done=False)
    if args.quality_minutes is not None:
        import bench_quality

        sections.append(bench_quality.run(args.quality_minutes))
    write(done=True)
    print(f"written {out}")
    return out


if __name__ == "__main__":
    main()
