"""One LightningDataModule for every dataset: a reader, preprocessing, splits and a sampling mode.

The dataset-specific part is the reader (``medseg.data.formats.*``) and, for the default run, the
synthetic generator (``medseg.data.synth.*``); both come from config with ``_target_``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from medseg.data.cache import CachedCases, CaseCache, fingerprint
from medseg.data.case import Case
from medseg.data.datasets import FullImageDataset, PatchDataset, ResizeDataset
from medseg.data.formats.base import SegmentationReader
from medseg.data.preprocess import Compose, FieldOfView, Resample
from medseg.data.samplers import EpochSampler, eval_sampler
from medseg.data.splits import find_split, grouped_holdout, load_split_spec, make_splits, name_resolver
from medseg.errors import ConfigError, DataError
from medseg.utils.runtime import resolve_num_workers

log = logging.getLogger(__name__)


class SegmentationDataModule(L.LightningDataModule):
    """Splits, preprocesses and serves one dataset.

    Args:
        root: dataset folder in its distributed layout.
        reader: ``root -> SegmentationReader`` (a partial from config).
        synthesize: ``out -> None`` generator run when ``root`` does not exist (the default
            synthetic data), or ``None`` to require real data. It never writes outside
            ``synth_parent`` (a typo in ``data.root`` fails instead of filling a stray folder).
        preprocess: list of ``Case -> Case`` steps.
        train_mode: ``patch`` (random patches) or ``resize`` (whole image resized to ``resize``).
        patch_size, samples_per_epoch, foreground_fraction: patch sampling.
        resize: training size in ``resize`` mode.
        augment: ``(image, mask, roi) -> ...`` training augmentation, or ``None``.
        num_workers: training loader processes; ``auto``: 0 on CPU, ``min(4, cpus - 1)`` with a GPU
            (:func:`medseg.utils.runtime.resolve_num_workers`; ``build_datamodule`` resolves it for the
            trainer's device). Batches are identical for any number of workers.
        val_fraction, test_fraction, fold, n_folds: see :func:`medseg.data.splits.make_splits`.
        train_split, test_split: names of the dataset's on-disk splits (aliases work: ``val`` finds
            ``validation``, ``train`` finds ``training``).
        val_split: an on-disk split used as the validation set when present (e.g. ``val`` of a
            folder with ``val_png/``); else validation is held out of the training split.
        use_roi: compute metrics inside the reader's ROI (e.g. FOV) when it has one.
        splits: fixed case lists replacing the splitting rules above: a mapping
            ``{train, val, test}`` (``validation``/``training`` aliases; missing val/test are held out
            as above), a list of folds (nnU-Net ``splits_final.json``; ``fold`` picks one), or the
            path of such a file (JSON, YAML, CSV ``name,split``, or a folder of ``<split>.txt``).
            Names may be case ids, file names or stems. See :func:`medseg.data.splits.load_split_spec`.
        fov: ``auto`` derives a field-of-view ROI from the image for cases whose reader gives none
            (fundus photos); ``None`` keeps the reader's.
        max_size, spacing: resample each case before preprocessing (see
            :class:`medseg.data.preprocess.Resample`): longest side at most ``max_size`` pixels,
            3D volumes to ``spacing`` mm.
        baseline: the reference the report prints next to the model (``global_threshold``: the best
            single threshold on the green channel, for fundus images), or ``None``.
        cache_dir: if set, preprocessed cases are stored there as ``.npy`` (see
            :mod:`medseg.data.cache`) and later runs read no source file.
        lazy: keep cases on disk (memory-mapped from ``cache_dir``) instead of in memory: memory
            stays bounded for large 3D datasets. Needs ``cache_dir``.
        max_centres: cap on the candidate patch centres kept per case (bounds memory for large
            volumes); ``None`` keeps all.
    """

    def __init__(
        self,
        root: str,
        reader: Callable[..., SegmentationReader],
        synthesize: Callable[..., object] | None = None,
        synth_parent: str | None = None,
        preprocess: Sequence[Callable[[Case], Case]] | None = None,
        train_mode: str = "patch",
        patch_size: Sequence[int] = (64, 64),
        samples_per_epoch: int = 512,
        foreground_fraction: float = 0.5,
        resize: Sequence[int] | None = None,
        augment=None,
        batch_size: int = 16,
        num_workers: int | str = "auto",
        val_fraction: float = 0.2,
        test_fraction: float = 0.25,
        fold: int | None = None,
        n_folds: int = 5,
        train_split: str = "training",
        test_split: str | None = "test",
        use_roi: bool = True,
        seed: int = 0,
        cache_dir: str | None = None,
        lazy: bool = False,
        max_centres: int | None = None,
        splits: str | Mapping[str, Sequence[str]] | Sequence[Mapping[str, Sequence[str]]] | None = None,
        baseline: str | None = None,
        val_split: str | None = None,
        fov: str | None = None,
        max_size: int | None = None,
        spacing: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if lazy and not cache_dir:
            raise ConfigError("data.lazy=true needs data.cache_dir (cases are memory-mapped from the cache); "
                              "set data.cache_dir=<folder> or data.lazy=false")
        if train_mode not in ("patch", "resize"):
            raise ConfigError(f"data.train_mode must be patch or resize, got {train_mode!r}")
        if train_mode == "resize" and not resize:
            raise ConfigError("data.train_mode=resize needs data.resize (e.g. [512, 512])")
        self.root = Path(root).expanduser()
        self.reader_factory, self.synthesize, self.synth_parent = reader, synthesize, synth_parent
        if fov not in (None, "auto", "none"):
            raise ConfigError(f"data.fov must be auto or null, got {fov!r}")
        head: list[Callable[[Case], Case]] = [FieldOfView()] if fov == "auto" else []
        if max_size is not None or spacing is not None:
            head.append(Resample(max_size=max_size, spacing=spacing))
        self.read_steps = Compose(head)  # applied to raw cases too (overlays, baselines)
        self.preprocess = Compose(head + list(preprocess or []))
        self.val_split, self.fov, self.max_size, self.spacing = val_split, fov, max_size, spacing
        self.train_mode, self.patch_size, self.resize = train_mode, list(patch_size), resize
        self.samples_per_epoch, self.foreground_fraction = samples_per_epoch, foreground_fraction
        self.augment = augment
        self.batch_size, self.num_workers = batch_size, resolve_num_workers(num_workers)
        self.val_fraction, self.test_fraction, self.fold, self.n_folds = val_fraction, test_fraction, fold, n_folds
        self.train_split, self.test_split, self.use_roi, self.seed = train_split, test_split, use_roi, seed
        if fov == "auto":
            self.use_roi = True  # a derived field of view is asked for: metrics and patches inside it
        self.cache_dir, self.lazy, self.max_centres = cache_dir, lazy, max_centres
        self.fixed_splits, self.baseline = splits, baseline
        self.reader: SegmentationReader | None = None
        self.splits: dict[str, list[str]] = {}
        self.cases: dict[str, Sequence[Case]] = {}

    # ------------------------------------------------------------------ setup
    def prepare_data(self) -> None:
        if self.root.exists():
            if self.root.is_dir() and not any(self.root.iterdir()):
                raise DataError(f"{self.root}: data.root is an empty folder")
            return
        if self.synthesize is None:
            raise DataError(f"{self.root}: data.root does not exist (point data.root at the dataset folder)")
        parent = Path(self.synth_parent).expanduser().resolve() if self.synth_parent else None
        if parent is not None and parent not in self.root.resolve().parents:
            raise DataError(
                f"{self.root}: data.root does not exist, and synthetic data is only generated under "
                f"{parent}; check the path, or set data.synthesize=null for real data"
            )
        log.info("data.root %s not found: generating synthetic data there", self.root)
        self.synthesize(out=str(self.root))

    def setup(self, stage: str | None = None) -> None:
        if self.reader is not None:
            return
        self.reader = self.reader_factory(root=str(self.root))
        self.splits = self._make_splits()
        for name, ids in self.splits.items():
            self.cases[name] = self._load_split(ids)
            if not self.cases[name] and not (name == "val" and not ids):  # val: none with data.val_fraction=0
                raise DataError(f"{self.root}: the {name} split has no readable cases ({len(ids)} listed, all "
                                f"skipped: see the warnings above, or run medseg-inspect with the same data options)")
        log.info("splits: %s", {k: len(v) for k, v in self.splits.items()})
        if self.train_mode == "patch":
            self._check_patch_size()

    def _check_patch_size(self) -> None:
        """``data.patch_size`` larger than every training image along an axis trains on zero padding."""
        cases = self.cases["train"]
        shapes = [tuple(c.spatial_shape) for c in cases]
        patch = tuple(int(p) for p in self.patch_size)
        if any(len(s) != len(patch) for s in shapes):
            raise ConfigError(f"data.patch_size={list(patch)} has {len(patch)} values, but the training images of "
                              f"{self.root} are {len(shapes[0])}D (shape {list(shapes[0])})")
        largest = [max(s[i] for s in shapes) for i in range(len(patch))]
        if any(p > m for p, m in zip(patch, largest)):
            raise ConfigError(f"data.patch_size={list(patch)} is larger than the training images of {self.root} "
                              f"(largest {largest}): patches would be mostly zero padding; choose a patch_size "
                              f"of at most {largest}, or data.train_mode=resize")
        small = [c.case_id for c, s in zip(cases, shapes) if any(p > d for p, d in zip(patch, s))]
        if small:
            warnings.warn(f"data.patch_size={list(patch)}: {len(small)} training images are smaller and are "
                          f"zero-padded (e.g. {small[:3]})", stacklevel=2)

    def _load_split(self, ids: list[str]) -> Sequence[Case]:
        reader = self._reader()
        if not self.cache_dir:
            return [self._prepare(c) for c in reader.load_cases(ids)]
        cache = CaseCache(self.cache_dir, fingerprint(reader, self.preprocess, self.use_roi), mmap=self.lazy)
        done = []
        for cid in ids:
            if not cache.has(cid):
                try:
                    case = self._prepare(reader.load_case(cid))
                except DataError as exc:
                    if reader.strict:
                        raise
                    warnings.warn(f"skipping case {cid}: {exc}", stacklevel=2)
                    continue
                cache.save(case)
                del case  # bounded memory: one source case at a time
            done.append(cid)
        log.info("%d cases cached in %s", len(done), cache.dir)
        return CachedCases(cache, done) if self.lazy else [cache.load(c) for c in done]

    def _make_splits(self) -> dict[str, list[str]]:
        reader = self._reader()
        splits = reader.available_splits()
        train_split = find_split(self.train_split, splits)
        if train_split is None:
            raise DataError(f"{self.root}: no '{self.train_split}' split found (found {splits}); "
                            f"set data.train_split to one of these")
        pool = reader.list_cases(train_split)
        test_split = find_split(self.test_split, splits)
        test_ids = None
        if test_split and test_split != train_split and reader.has_labels(test_split):
            test_ids = reader.list_cases(test_split)
        val_split = find_split(self.val_split, splits)
        val_ids = reader.list_cases(val_split) if val_split and val_split != train_split \
            and reader.has_labels(val_split) else None
        spec = self.fixed_splits if self.fixed_splits is not None else getattr(reader, "splits_file", None)
        if spec is not None:
            if self.fixed_splits is None:
                log.info("%s: using the dataset's own %s (fold %s)", self.root, spec, self.fold or 0)
            return self._read_fixed_splits(spec, pool + list(val_ids or []), test_ids)
        if test_ids is None:
            log.warning("%s: no labelled '%s' split; holding out %.0f%% of '%s' as the test set",
                        self.root, self.test_split, 100 * self.test_fraction, train_split)
        try:
            if val_ids is not None and self.fold is None:
                pool_, test = (sorted(pool), sorted(test_ids)) if test_ids else \
                    grouped_holdout(pool, self.test_fraction, self.seed + 1, reader.group_of)
                return {"train": pool_, "val": sorted(val_ids), "test": test}
            return make_splits(pool + list(val_ids or []), test_ids, val_fraction=self.val_fraction,
                               test_fraction=self.test_fraction, seed=self.seed, fold=self.fold,
                               n_folds=self.n_folds, group_of=reader.group_of)
        except ValueError as exc:
            n = len(set(pool))
            raise DataError(
                f"{self.root}: cannot split the {n} case(s) of split '{train_split}' into train / val / test "
                f"({exc}). Give the splits with data.splits={{train: [...], val: [...], test: [...]}} (or a "
                f"splits file), a labelled test split with data.test_split, or more cases") from exc

    def _read_fixed_splits(self, spec, known: Sequence[str], test_ids: Sequence[str] | None) -> dict[str, list[str]]:
        """``data.splits``: case lists in one of the shapes of :func:`load_split_spec`."""
        spec, source = load_split_spec(spec)
        all_known = list(known) + list(test_ids or [])
        resolve = name_resolver(all_known, getattr(self.reader, "aliases", None))

        def ids(names: Sequence[str], key: str) -> list[str]:
            found, unknown = resolve(names)
            if unknown:
                raise DataError(f"{source}: case ids not in {self.root}: {unknown[:5]} ({len(unknown)} {key} "
                                f"name(s) match no case; cases look like {sorted(all_known)[:3]})")
            return found

        group_of = self._reader().group_of
        if isinstance(spec, list):
            fold = 0 if self.fold is None else int(self.fold)
            if self.fold is not None and self.n_folds != len(spec):
                raise ConfigError(f"{source} holds {len(spec)} folds but data.n_folds={self.n_folds} "
                                  f"(medseg-kfold folds={len(spec)})")
            if not 0 <= fold < len(spec):
                raise ConfigError(f"data.fold={fold} is outside the {len(spec)} folds of {source}")
            train, val = ids(spec[fold]["train"], "train"), ids(spec[fold]["val"], "val")
            if test_ids:
                test = sorted(test_ids)
            else:  # one test set for every fold: held out of the whole pool, then removed from the fold
                pool = sorted({c for f in spec for k in ("train", "val") for c in ids(f[k], k)})
                _, test = grouped_holdout(pool, self.test_fraction, self.seed + 1, group_of)
                log.warning("%s: no labelled test split: %d cases held out of every fold as the test set",
                            source, len(test))
                train = [c for c in train if c not in set(test)]
                val = [c for c in val if c not in set(test)]
            return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}
        train = ids(spec["train"], "train")
        if spec.get("test"):
            test = ids(spec["test"], "test")
        elif test_ids:
            test = sorted(test_ids)
        else:
            train, test = grouped_holdout(train, self.test_fraction, self.seed + 1, group_of)
            log.warning("%s: no test list: %d cases of train held out as the test set", source, len(test))
        if spec.get("val"):
            val = ids(spec["val"], "val")
        elif self.val_fraction == 0:
            val = []
        else:
            train, val = grouped_holdout(train, self.val_fraction, self.seed, group_of)
        overlap = (set(train) & set(val)) | (set(train) & set(test)) | (set(val) & set(test))
        if overlap:
            raise DataError(f"{source}: cases in more than one split: {sorted(overlap)[:5]}")
        return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}

    def _prepare(self, case: Case) -> Case:
        case = self.preprocess(case)
        if not self.use_roi:
            case.roi = None
        return case.validate()

    # ------------------------------------------------------------ properties
    @property
    def task(self) -> str:
        return self._reader().task

    @property
    def class_names(self) -> list[str]:
        return list(self._reader().class_names)

    @property
    def in_channels(self) -> int:
        return int(self.cases["train"][0].image.shape[0])

    @property
    def spatial_dims(self) -> int:
        return self._reader().spatial_dims

    def _reader(self) -> SegmentationReader:
        if self.reader is None:
            raise RuntimeError("call setup() first")
        return self.reader

    # ----------------------------------------------------------- dataloaders
    def train_dataset(self):
        if self.train_mode == "resize":
            assert self.resize is not None  # checked in __init__
            return ResizeDataset(self.cases["train"], self.resize, augment=self.augment, seed=self.seed)
        return PatchDataset(self.cases["train"], self.patch_size, self.samples_per_epoch,
                            self.foreground_fraction, augment=self.augment, seed=self.seed,
                            max_centres=self.max_centres)

    def train_dataloader(self) -> DataLoader:
        if getattr(self, "_train_ds", None) is None:
            self._train_ds = self.train_dataset()
        ds = self._train_ds
        epoch = _fit_epoch(self.trainer)
        # the order and content of epoch e depend on (seed, e) only: exact after a resume (EpochSampler)
        sampler = EpochSampler(ds, seed=self.seed, shuffle=True, epoch=epoch)
        return ResumableLoader(ds, batch_size=self.batch_size, sampler=sampler, drop_last=len(ds) > self.batch_size,
                               # not persistent: a worker's copy of the dataset would keep the epoch it
                               # was started in (PatchDataset.set_epoch), and batches would differ from 0 workers
                               num_workers=self.num_workers, persistent_workers=False,
                               worker_init_fn=_reseed_worker, progress=lambda: _batches_done(self.trainer))

    def _eval_loader(self, split: str) -> DataLoader:
        ds = FullImageDataset(self.cases[split])
        # under DDP: each image on exactly one rank (no padding duplicates; see medseg.data.samplers)
        return DataLoader(ds, batch_size=1, shuffle=False, sampler=eval_sampler(ds), num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def raw_case(self, case_id: str) -> Case:
        """The case as read from disk, before preprocessing (for overlays and baselines); the
        ``fov`` and ``max_size``/``spacing`` steps are applied, so it matches the predictions' grid."""
        return self.read_steps(self._reader().load_case(case_id))


def _reseed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()  # set: this runs in a worker
    aug = getattr(getattr(info, "dataset", None), "augment", None)
    if aug is not None and hasattr(aug, "reseed"):
        aug.reseed(int(torch.initial_seed() % 2**31))
    np.random.seed(int(torch.initial_seed() % 2**32))


def _fit_epoch(trainer) -> int:
    """The epoch the fit loop is in (restored from a checkpoint on resume); 0 outside a fit."""
    if trainer is None:
        return 0
    try:
        return int(trainer.fit_loop.epoch_progress.current.processed)
    except AttributeError:
        return int(trainer.current_epoch)


def _batches_done(trainer) -> tuple[int, int]:
    """``(epoch, training batches finished in it)`` when a checkpoint is saved."""
    if trainer is None:
        return 0, 0
    loop = trainer.fit_loop
    return int(loop.epoch_progress.current.processed), int(loop.epoch_loop.batch_progress.current.processed)


class ResumableLoader(DataLoader):
    """A training DataLoader with the ``state_dict`` / ``load_state_dict`` Lightning saves in
    checkpoints: the epoch and the number of batches already trained in it. Restored from a
    mid-epoch checkpoint (``callbacks.checkpoint.every_n_train_steps``, or an interrupt), the next
    pass skips those batches (:meth:`EpochSampler.skip_next`), so training continues exactly where
    it stopped instead of replaying the start of the epoch."""

    def __init__(self, *args, progress: Callable[[], tuple[int, int]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._progress = progress

    def state_dict(self) -> dict:
        epoch, batches = self._progress() if self._progress is not None else (0, 0)
        return {"epoch": epoch, "batches": batches, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if isinstance(self.sampler, EpochSampler) and "epoch" in state:
            n = int(state.get("batches", 0)) * int(state.get("batch_size", self.batch_size or 1))
            self.sampler.skip_next(n, epoch=int(state["epoch"]))
