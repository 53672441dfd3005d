"""``medseg-synth <dataset> --out DIR``: write a synthetic dataset in its real on-disk layout.

``--n`` is the number of training cases (CHASE_DB1: subjects; hand bones: IDs), ``--n-test`` of
test (or validation) cases, ``--size`` the image size (H W for 2D, one side for square JSRT/hand
images, I J K for BraTS volumes). Defaults are the real datasets' sizes. Examples::

    medseg-synth brats --out data/BraTS2020 --n 8 --size 96 96 64
    medseg-synth handbone --out data/handbone --n 10 --size 256
    medseg-synth jsrt --out data/JSRT --n 40 --size 512 --layout scr
    medseg-synth folder --out data/shapes --task multilabel --ext nii.gz --size 32 32 32
    medseg-synth brats --out data/BraTS2023 --year 2023 --n 4 --size 96 96 64
    medseg-synth nnunet --out data/nnUNet_raw/Dataset901_Shapes --size 32 32 32 [--regions] [--ext png --size 64 64]
    medseg-synth decathlon --out data/Task90_Shapes --size 32 32 32
    medseg-synth dicom --out data/ct --kind series --size 32 32 16   (--kind xray --size 64 64)
"""

from __future__ import annotations

import argparse
import sys

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors


def _n_test(args, default: int | None = None) -> int:
    return args.n_test if args.n_test is not None else (args.n if default is None else default)


def _drive(args) -> None:
    from medseg.data.synth.drive import write_drive

    h, w = args.size or (584, 565)
    write_drive(args.out, n_train=args.n, n_test=_n_test(args), height=h, width=w, seed=args.seed)


def _brats(args) -> None:
    from medseg.data.synth.brats import write_brats

    write_brats(args.out, n_cases=args.n, shape=tuple(args.size or (240, 240, 155)), seed=args.seed,
                validation_cases=_n_test(args, 0), year=args.year)


def _handbone(args) -> None:
    from medseg.data.synth.handbone import write_handbone

    size = (args.size or [2048])[0]
    write_handbone(args.out, n_train=args.n, n_test=_n_test(args, max(1, args.n // 5)), size=size, seed=args.seed)


def _chase(args) -> None:
    from medseg.data.synth.chase import write_chase

    h, w = args.size or (960, 999)
    write_chase(args.out, n_subjects=args.n, height=h, width=w, seed=args.seed)


def _jsrt(args) -> None:
    from medseg.data.synth.jsrt import write_jsrt

    write_jsrt(args.out, n=args.n, size=(args.size or [2048])[0], layout=args.layout or "scr", seed=args.seed)


def _folder(args) -> None:
    from medseg.data.synth.folder import write_folder

    write_folder(args.out, n=args.n, size=tuple(args.size or (128, 128)), task=args.task, ext=args.ext,
                 seed=args.seed)


def _nnunet(args) -> None:
    from medseg.data.synth.nnunet import write_nnunet

    size = tuple(args.size or (32, 32, 32))
    volume = args.ext in ("nii.gz", "mha", "nrrd")
    # 3D sizes need a volume format: the default --ext png then means .nii.gz
    ending = "." + (args.ext if volume or len(size) == 2 else "nii.gz")
    write_nnunet(args.out, n=args.n, n_test=_n_test(args, 2), size=size, file_ending=ending,
                 regions=args.regions, folds=min(5, args.n), seed=args.seed)


def _decathlon(args) -> None:
    from medseg.data.synth.decathlon import write_decathlon

    write_decathlon(args.out, n=args.n, n_test=_n_test(args, 2), size=tuple(args.size or (32, 32, 32)), seed=args.seed)


def _dicom(args) -> None:
    from medseg.data.synth.dicom import write_dicom

    write_dicom(args.out, kind=args.kind, n=args.n, size=tuple(args.size) if args.size else None, seed=args.seed)


GENERATORS = {"drive": _drive, "chase": _chase, "jsrt": _jsrt, "brats": _brats, "handbone": _handbone,
              "folder": _folder, "nnunet": _nnunet, "decathlon": _decathlon, "dicom": _dicom}


@clean_errors("medseg-synth")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="medseg-synth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(GENERATORS))
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--n", type=int, default=20, help="number of training cases")
    p.add_argument("--n-test", type=int, default=None, help="number of test/validation cases")
    p.add_argument("--size", type=int, nargs="+", default=None, help="image size, e.g. --size 584 565")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=["scr", "png", "folder"], default=None, help="jsrt: on-disk variant")
    p.add_argument("--task", choices=["binary", "multiclass", "multilabel"], default="binary", help="folder")
    p.add_argument("--ext", choices=["png", "jpg", "tif", "bmp", "ppm", "pgm", "nii.gz", "mha", "nrrd"], default="png",
                   help="folder / nnunet: file type")
    p.add_argument("--year", type=int, default=2020, help="brats: the layout of 2013, 2018-2021 or 2023+")
    p.add_argument("--regions", action="store_true", help="nnunet: region labels (multi-label)")
    p.add_argument("--kind", choices=["series", "xray"], default="series", help="dicom: CT-like series or X-rays")
    args = p.parse_args(argv)
    GENERATORS[args.dataset](args)
    print(f"wrote synthetic {args.dataset} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
