"""Time of the clinical cross-check's registration to MNI152, per case, on one thread.

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_registration.py --cases 5

Each case is a synthetic 240 x 240 x 155, 1 mm MNI-derived head (BraTS header affine) with a random
rotation (up to 10 degrees per axis), scaling (0.88-1.00 per axis) and shift (up to 6 mm). Prints, per
case, the registration time (SimpleITK, one thread, at --spacing mm), the Dice of the registered brain with
the template's and the error (mm) of a point carried back to MNI; then the median. The first call also
builds the MNI region map once (not included: it is cached). Times are wall-clock on whatever machine runs
this; on a shared machine they are noisy upper bounds.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=5)
    p.add_argument("--spacing", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    from medseg.apps.clinical.register import register_to_mni
    from medseg.data.synth.brats import brats_affine
    from medseg.data.synth.head import mni_head, random_world_from_mni

    shape = (240, 240, 155)
    affine = brats_affine(shape)
    point = np.array([-38.0, -20.0, 55.0])
    times = []
    for k in range(args.cases):
        rng = np.random.default_rng(100 + k)
        place = random_world_from_mni(rng, shape, affine)
        vols, _, _ = mni_head(rng, shape, affine, place, [(point, 9.0)])
        reg = register_to_mni(vols["t1"], affine, spacing_mm=args.spacing, threads=args.threads)
        world = place[:3, :3] @ point + place[:3, 3]
        err = np.linalg.norm(reg.case_to_mni[:3, :3] @ world + reg.case_to_mni[:3, 3] - point)
        times.append(reg.seconds)
        print(f"case {k + 1}: {reg.seconds:.2f} s, Dice {reg.dice:.3f}, point error {err:.2f} mm, "
              f"{reg.iterations} iterations")
    print(f"median {statistics.median(times):.2f} s per case (min {min(times):.2f}, max {max(times):.2f}); "
          f"{args.threads} thread(s), {args.spacing:g} mm")


if __name__ == "__main__":
    main()
