"""``medseg-report RUN [RUN ...]``: compare runs, folds and ensembles in one report.

Writes ``report.md``, a self-contained ``report.html`` (images inline) and CSVs (leaderboard with
bootstrap CIs, pairwise paired tests, per-image and per-class tables).

Examples::

    medseg-report outputs/train/2026-11-23_10-00-00
    medseg-report outputs/kfold/drive_unet_5fold_seed42 outputs/ensemble/2026-11-23_12-00-00 --out reports/cv
"""

from __future__ import annotations

import argparse
import sys

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors


@clean_errors("medseg-report")
def main(argv: list[str] | None = None) -> int:
    from medseg.report.compare import build_report

    p = argparse.ArgumentParser(prog="medseg-report", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run, evaluation, ensemble or k-fold folders")
    p.add_argument("--out", default="report", help="output folder (default: ./report)")
    p.add_argument("--title", default="medseg report")
    p.add_argument("--metric", default="dice", help="metric of the paired comparisons and class chart")
    p.add_argument("--n-boot", type=int, default=10000, help="bootstrap resamples")
    args = p.parse_args(argv)
    html = build_report(args.runs, args.out, args.title, args.metric, args.n_boot)
    print(f"report: {html}\n        {html.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
