"""Train / validation / test splits: the dataset's own, random by ratio, or grouped k-fold.

Splits are deterministic from the seed and grouped: all cases of one group (patient, subject,
hand ID) land on the same side. The result is written as ``splits.json`` in the run folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _groups(case_ids: Sequence[str], group_of: Callable[[str], str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for cid in case_ids:
        groups.setdefault(group_of(cid), []).append(cid)
    return groups


def grouped_kfold(
    case_ids: Sequence[str], n_folds: int, seed: int, group_of: Callable[[str], str] = lambda c: c
) -> list[list[str]]:
    """Partition cases into ``n_folds`` folds of near-equal size, never splitting a group."""
    groups = _groups(case_ids, group_of)
    if n_folds < 2:
        raise ValueError(f"k-fold needs at least 2 folds, got {n_folds}")
    if n_folds > len(groups):
        raise ValueError(f"{n_folds} folds but only {len(groups)} groups of cases")
    rng = np.random.default_rng(seed)
    keys = sorted(groups)
    rng.shuffle(keys)
    # largest groups first, each into the currently smallest fold (balanced, deterministic)
    keys.sort(key=lambda k: -len(groups[k]))
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for k in keys:
        min(folds, key=len).extend(groups[k])
    return [sorted(f) for f in folds]


def grouped_holdout(
    case_ids: Sequence[str], fraction: float, seed: int, group_of: Callable[[str], str] = lambda c: c
) -> tuple[list[str], list[str]]:
    """Split off about ``fraction`` of the cases (whole groups, at least one) -> ``(rest, held_out)``."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    groups = _groups(case_ids, group_of)
    if len(groups) < 2:
        raise ValueError(f"cannot hold out a fraction of {len(groups)} group(s): need at least 2")
    keys = sorted(groups)
    np.random.default_rng(seed).shuffle(keys)
    target = max(1, round(fraction * len(case_ids)))
    held: list[str] = []
    for k in keys:
        if len(held) >= target or len(held) + len(groups[k]) > len(case_ids) - 1:
            continue
        held.extend(groups[k])
    rest = [c for c in case_ids if c not in set(held)]
    return sorted(rest), sorted(held)


def make_splits(
    train_pool: Sequence[str],
    test_ids: Sequence[str] | None,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    fold: int | None = None,
    n_folds: int = 5,
    group_of: Callable[[str], str] = lambda c: c,
) -> dict[str, list[str]]:
    """Build ``{"train", "val", "test"}`` lists.

    * ``test``: the dataset's own labelled test split when given, else ``test_fraction`` of the
      training pool held out (grouped).
    * ``val``: fold ``fold`` of a grouped ``n_folds`` k-fold of the remaining pool, or
      ``val_fraction`` held out (grouped), or none with ``val_fraction=0`` (train on the whole pool:
      for a run that keeps its final weights, ``callbacks.model_checkpoint.monitor=null``).
    """
    pool = sorted(train_pool)
    if test_ids:
        test = sorted(test_ids)
    else:
        pool, test = grouped_holdout(pool, test_fraction, seed + 1, group_of)
    if fold is not None:
        if not 0 <= fold < n_folds:
            raise ValueError(f"data.fold={fold} is outside 0..{n_folds - 1}")
        folds = grouped_kfold(pool, n_folds, seed, group_of)
        val = folds[fold]
        train = sorted(c for i, f in enumerate(folds) if i != fold for c in f)
    elif val_fraction == 0:
        train, val = pool, []
    else:
        train, val = grouped_holdout(pool, val_fraction, seed, group_of)
    return {"train": train, "val": val, "test": test}


# ------------------------------------------------------------------ split files
#: split names that mean the same thing in the wild
SPLIT_ALIASES = {"train": ("train", "training", "tr"), "val": ("val", "validation", "valid", "dev"),
                 "test": ("test", "testing", "ts")}


def canonical_split(name: str) -> str | None:
    """``validation -> val``, ``training -> train``...; ``None`` for names that are not a split."""
    low = str(name).strip().lower()
    return next((k for k, names in SPLIT_ALIASES.items() if low in names), None)


def find_split(name: str | None, available: Sequence[str]) -> str | None:
    """The on-disk split called ``name`` or one of its aliases (``val`` finds ``validation``)."""
    if name is None:
        return None
    if name in available:
        return name
    canon = canonical_split(name)
    if canon is None:
        return None
    return next((s for s in available if canonical_split(s) == canon), None)


def load_split_spec(spec: Any, source: str = "data.splits") -> tuple[dict | list, str]:
    """Read ``data.splits`` into ``{"train": [...], "val": [...], "test": [...]}`` (any subset) or a
    list of such mappings (nnU-Net's ``splits_final.json``: one ``{"train", "val"}`` per fold).

    ``spec`` is a mapping or list (inline config), or the path of: a JSON file (mapping or list of
    folds), a YAML file, a CSV with a name column (``name``/``case``/``id``/``image``/``filename``)
    and a ``split`` column, or a folder of ``<split>.txt`` files with one name per line. Split
    names may be aliases (``validation``, ``training``). Returns ``(spec, source)``.
    """
    from pathlib import Path

    from omegaconf import DictConfig, ListConfig, OmegaConf

    from medseg.errors import DataError

    if isinstance(spec, (DictConfig, ListConfig)):
        spec = OmegaConf.to_container(spec, resolve=True)
    if isinstance(spec, (str, Path)):
        path = Path(spec).expanduser()
        source = str(path)
        if not path.exists():
            raise DataError(f"{path}: data.splits file not found")
        try:
            if path.is_dir():
                spec = {}
                for f in sorted(path.iterdir()):
                    canon = canonical_split(f.stem) if f.suffix.lower() in (".txt", ".lst", ".csv", "") else None
                    if canon:
                        spec.setdefault(canon, []).extend(ln.strip() for ln in f.read_text().splitlines() if ln.strip())
                if not spec:
                    raise DataError(f"{path}: no <split>.txt files (train.txt, val.txt / validation.txt, test.txt)")
            elif path.suffix.lower() == ".json":
                import json

                spec = json.loads(path.read_text())
            elif path.suffix.lower() in (".yaml", ".yml"):
                spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
            elif path.suffix.lower() in (".csv", ".tsv"):
                import pandas as pd

                df = pd.read_csv(path, sep=None, engine="python")
                cols = {c.lower(): c for c in df.columns}
                name_col = next((cols[c] for c in ("name", "case", "case_id", "id", "image", "filename", "file")
                                 if c in cols), None)
                if name_col is None or "split" not in cols:
                    raise DataError(f"{path}: a split CSV needs a name column (name/case/id/image/filename) "
                                    f"and a 'split' column; found {list(df.columns)}")
                spec = {}
                for name, split in zip(df[name_col].astype(str), df[cols["split"]].astype(str)):
                    spec.setdefault(split, []).append(name)
            else:
                spec = {}
                for line in path.read_text().splitlines():  # "<name> <split>" per line
                    parts = line.replace(",", " ").split()
                    if len(parts) >= 2:
                        spec.setdefault(parts[1], []).append(parts[0])
        except DataError:
            raise
        except Exception as exc:  # json / yaml / csv parsers raise many types
            raise DataError(f"{path}: cannot read the splits file ({type(exc).__name__}: {exc})") from exc
    if isinstance(spec, list):
        if not spec or not all(isinstance(f, dict) and "train" in f and "val" in f for f in spec):
            raise DataError(f"{source}: a list of folds needs {{'train': [...], 'val': [...]}} per fold "
                            "(nnU-Net's splits_final.json)")
        return [_canonical_keys(f, source) for f in spec], source
    if not isinstance(spec, dict):
        raise DataError(f"{source}: expected a mapping of split name -> case names, or a list of folds")
    return _canonical_keys(spec, source), source


def _canonical_keys(spec: dict, source: str) -> dict[str, list[str]]:
    from medseg.errors import DataError

    out: dict[str, list[str]] = {}
    for key, names in spec.items():
        canon = canonical_split(key)
        if canon is None:
            raise DataError(f"{source}: unknown split name {key!r} (use train/training, val/validation, test)")
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise DataError(f"{source}: split {key!r} must be a list of case names")
        out.setdefault(canon, []).extend(str(n) for n in names)
    if "train" not in out:
        raise DataError(f"{source}: no 'train' list (found {sorted(spec)})")
    return out


def name_resolver(
    known: Sequence[str], aliases: Callable[[str], Sequence[str]] | None = None
) -> Callable[[Sequence[str]], tuple[list[str], list[str]]]:
    """``names -> (case ids, unknown names)``: a split file may name a case by its id, its file name
    or its stem, with or without a folder (``stare-images/im0001.ppm`` -> ``im0001``)."""
    from pathlib import PurePosixPath

    from medseg.data.formats.files import split_ext

    table: dict[str, str] = {}
    for cid in known:
        for a in (aliases(cid) if aliases else [cid]):
            table.setdefault(str(a), cid)
            table.setdefault(str(a).lower(), cid)

    def resolve(names: Sequence[str]) -> tuple[list[str], list[str]]:
        ids: list[str] = []
        unknown: list[str] = []
        for n in names:
            base = PurePosixPath(str(n).replace("\\", "/")).name
            stem = split_ext(base)[0] or base
            hit = next((table[k] for k in (str(n), base, stem, base.lower(), stem.lower()) if k in table), None)
            (ids if hit is not None else unknown).append(hit if hit is not None else str(n))
        return sorted(set(ids)), unknown

    return resolve
