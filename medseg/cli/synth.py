"""``medseg-synth <dataset> --out DIR``: write a synthetic dataset in its real on-disk layout."""

from __future__ import annotations

import argparse
import sys

import medseg  # noqa: F401


def _drive(args) -> None:
    from medseg.data.synth.drive import write_drive

    h, w = args.size or (584, 565)
    write_drive(args.out, n_train=args.n, n_test=args.n_test if args.n_test is not None else args.n,
                height=h, width=w, seed=args.seed)


GENERATORS = {"drive": _drive}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="medseg-synth", description=__doc__)
    p.add_argument("dataset", choices=sorted(GENERATORS))
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--n", type=int, default=20, help="number of training cases")
    p.add_argument("--n-test", type=int, default=None, help="number of test cases (default: --n)")
    p.add_argument("--size", type=int, nargs="+", default=None, help="image size, e.g. --size 584 565")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    GENERATORS[args.dataset](args)
    print(f"wrote synthetic {args.dataset} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
