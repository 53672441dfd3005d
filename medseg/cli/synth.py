"""``medseg-synth <dataset> --out DIR [key=value ...]``: write a synthetic dataset in its real on-disk layout.

The generator and its defaults are those of ``conf/data/<dataset>_synth.yaml``'s ``synthesize:`` node
(the data ``medseg-train data=<dataset>_synth`` writes on first use); the flags and ``key=value``
arguments override that node. ``--n`` is the number of training cases (CHASE_DB1: subjects; hand
bones: IDs; the generator's ``n``, ``n_train``, ``n_cases`` or ``n_subjects``), ``--n-test`` of test
(or validation) cases, ``--size`` the image size (H W for 2D, one side for square JSRT/hand images,
I J K for BraTS volumes). Any other argument of the generator: ``key=value``. Examples::

    medseg-synth brats --out data/BraTS2020 --n 8 --size 96 96 64
    medseg-synth handbone --out data/handbone --n 10 --size 256
    medseg-synth jsrt --out data/JSRT --n 40 --size 512 --layout scr
    medseg-synth folder --out data/shapes --task multilabel --ext nii.gz --size 32 32 32
    medseg-synth brats --out data/BraTS2023 --year 2023 --n 4 --size 96 96 64
    medseg-synth nnunet --out data/nnUNet_raw/Dataset901_Shapes --size 32 32 32 [--regions] [--ext png --size 64 64]
    medseg-synth decathlon --out data/Task90_Shapes --size 32 32 32
    medseg-synth dicom --out data/ct --kind series --size 32 32 16   (--kind xray --size 64 64)
    medseg-synth drive --out data/DRIVE second_annotator=false

A new dataset's generator is one function plus the ``synthesize:`` node of its ``<name>_synth.yaml``.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir
from medseg.errors import ConfigError

OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

#: flag -> the generator parameters it sets (the first one the generator has)
FLAG_PARAMS: dict[str, tuple[str, ...]] = {
    "n": ("n", "n_train", "n_cases", "n_subjects"),
    "n_test": ("n_test", "validation_cases"),
    "seed": ("seed",), "layout": ("layout",), "task": ("task",), "year": ("year",), "regions": ("regions",),
    "kind": ("kind",),
}


def _positive(value: str) -> int:
    """argparse type of ``--n``/``--n-test``: a dataset with no cases would look written but hold nothing."""
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1 case is needed")
    return n


def synth_datasets(conf: str | Path | None = None) -> list[str]:
    """The names ``X`` of every ``conf/data/X_synth.yaml``."""
    folder = Path(conf or config_dir()) / "data"
    return sorted(p.name[: -len("_synth.yaml")] for p in folder.glob("*_synth.yaml"))


def synth_config(name: str, conf: str | Path | None = None) -> DictConfig:
    """The ``synthesize:`` node of ``conf/data/<name>_synth.yaml``, composed (its defaults list applied)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    conf = Path(conf or config_dir())
    path = conf / "data" / f"{name}_synth.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: no such data config; medseg-synth takes one of {', '.join(synth_datasets(conf))}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        data = compose(overrides=[f"+data={name}_synth"]).data
    node = data.get("synthesize")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{path}: has no 'synthesize:' node (a _target_ generator with _partial_: true and its "
                          "arguments, as in conf/data/drive_synth.yaml); add one to synthesise this dataset")
    return node


def generator_overrides(node: DictConfig, args: argparse.Namespace, extra: list[str], where: str) -> dict[str, Any]:
    """The flags given and the ``key=value`` arguments as keyword arguments of the node's generator."""
    from hydra.utils import get_method

    params = inspect.signature(get_method(str(node._target_))).parameters
    out: dict[str, Any] = {}
    for flag, names in FLAG_PARAMS.items():
        value = getattr(args, flag)
        if value is None or value is False:
            continue
        name = next((p for p in names if p in params), None)
        if name is None:
            raise ConfigError(f"--{flag.replace('_', '-')}: {where}'s generator {node._target_} has no such argument "
                              f"({', '.join(p for p in params if p != 'out')})")
        out[name] = value
    if args.size:
        out.update(_size_args(node, params, list(args.size), where))
    if args.ext:
        key = "ext" if "ext" in params else "file_ending" if "file_ending" in params else None
        if key is None:
            raise ConfigError(f"--ext: {where}'s generator {node._target_} writes one file type")
        out[key] = args.ext if key == "ext" else "." + args.ext
    for item in extra:
        key, sep, text = item.partition("=")
        if not sep or key not in params or key == "out":
            raise ConfigError(f"{item!r}: not a key=value argument of {where}'s generator {node._target_} "
                              f"(its arguments: {', '.join(p for p in params if p != 'out')}); --out sets the folder")
        out[key] = _yaml_value(text)
    return out


def _yaml_value(text: str) -> Any:
    """``false`` -> False, ``[1,2]`` -> [1, 2], ``2013`` -> 2013: YAML typing, as Hydra's own overrides."""
    import yaml

    return yaml.safe_load(text) if text else None


def _size_args(node: DictConfig, params: Any, size: list[int], where: str) -> dict[str, Any]:
    if "height" in params and "width" in params:
        if len(size) != 2:
            raise ConfigError(f"--size: {where} takes H W, got {len(size)} value(s)")
        return {"height": size[0], "width": size[1]}
    key = "size" if "size" in params else "shape" if "shape" in params else None
    if key is None:
        raise ConfigError(f"--size: {where}'s generator {node._target_} has no size argument")
    current = node.get(key, params[key].default)
    return {key: size[0] if isinstance(current, int) else size}


@clean_errors("medseg-synth")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="medseg-synth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=synth_datasets(), help="a conf/data/<dataset>_synth.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="any other argument of the generator")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--n", type=_positive, default=None, help="number of training cases (at least 1)")
    p.add_argument("--n-test", type=_positive, default=None, help="number of test/validation cases (at least 1)")
    p.add_argument("--size", type=int, nargs="+", default=None, help="image size, e.g. --size 584 565")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--layout", choices=["scr", "png", "folder"], default=None, help="jsrt: on-disk variant")
    p.add_argument("--task", choices=["binary", "multiclass", "multilabel"], default=None, help="folder")
    p.add_argument("--ext", choices=["png", "jpg", "tif", "bmp", "ppm", "pgm", "nii.gz", "mha", "nrrd"], default=None,
                   help="folder / nnunet: file type")
    p.add_argument("--year", type=int, default=None, help="brats: the layout of 2013, 2018-2021 or 2023+")
    p.add_argument("--regions", action="store_true", help="nnunet: region labels (multi-label)")
    p.add_argument("--kind", choices=["series", "xray"], default=None, help="dicom: CT-like series or X-rays")
    argv = list(sys.argv[1:] if argv is None else argv)
    # key=value pulled out first, so that one may follow --size (whose nargs="+" would take it)
    extra = [a for a in argv if OVERRIDE.match(a)]
    args = p.parse_args([a for a in argv if not OVERRIDE.match(a)])
    args.overrides = [*args.overrides, *extra]
    from hydra.utils import instantiate

    where = f"conf/data/{args.dataset}_synth.yaml"
    node = synth_config(args.dataset)
    generate = instantiate(node, **generator_overrides(node, args, args.overrides, where))
    generate(out=args.out)
    print(f"wrote synthetic {args.dataset} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
