"""Train / validation / test splits: the dataset's own, random by ratio, or grouped k-fold.

Splits are deterministic from the seed and grouped: all cases of one group (patient, subject,
hand ID) land on the same side. The result is written as ``splits.json`` in the run folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
      ``val_fraction`` held out (grouped).
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
    else:
        train, val = grouped_holdout(pool, val_fraction, seed, group_of)
    return {"train": train, "val": val, "test": test}
