"""Samplers: the training shuffle (:class:`EpochSampler`) and distributed evaluation (:func:`eval_sampler`).

Lightning's default ``DistributedSampler`` pads an uneven validation or test set by repeating samples
so that every rank gets the same number; :class:`~medseg.metrics.running.MeanPerImageDice` sums per-image
Dice and counts images, so a repeated image would be counted twice. Evaluation loaders therefore use
Lightning's ``UnrepeatedDistributedSampler``: every image on exactly one rank, the ranks' shares off by
at most one (per-rank step counts may differ; nothing in the evaluation steps synchronises per step).
"""

from __future__ import annotations

import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset, DistributedSampler, Sampler


def eval_sampler(dataset: Dataset) -> Sampler | None:
    """An unpadded, unshuffled distributed sampler when several processes run, else ``None``.

    Lightning leaves a loader that already has a ``DistributedSampler`` subclass as it is.

    Raises:
        ValueError: fewer images than processes (a rank with no image would hang the metric sync).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    world = dist.get_world_size()
    n = len(dataset)  # type: ignore[arg-type]  # map-style datasets define __len__
    if n < world:
        raise ValueError(f"{n} evaluation images for {world} processes: every process needs at "
                         "least one (use fewer devices or a larger validation split)")
    return UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=dist.get_rank(), shuffle=False)


def item_seed(*parts: int) -> int:
    """A 32-bit seed that is a pure function of ``parts`` (e.g. seed, epoch, index)."""
    import numpy as np

    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class EpochSampler(DistributedSampler):
    """The training shuffle: the order of epoch ``e`` is a pure function of ``(seed, e)``.

    A ``DistributedSampler`` (so Lightning leaves it as it is, also under DDP, where each rank takes its
    share), with one process when none is initialised. :meth:`set_epoch`, which Lightning calls at the
    start of every epoch, also tells the dataset its epoch (:class:`~medseg.data.datasets.PatchDataset`
    draws the patches of ``(seed, epoch, index)``), so a run resumed at epoch ``e`` sees exactly the
    batches an uninterrupted run sees. :meth:`skip_next` drops the first indices of the next pass: a
    run resumed mid-epoch continues after the batches it had already trained on.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, shuffle: bool = True, drop_last: bool = False,
                 epoch: int = 0) -> None:
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=int(seed), drop_last=drop_last)
        self._skip: tuple[int, int] | None = None
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(int(epoch))
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(int(epoch))

    def skip_next(self, n_indices: int, epoch: int) -> None:
        """Leave out the first ``n_indices`` indices of this rank in the next iteration of epoch ``epoch``."""
        self._skip = (int(epoch), max(0, int(n_indices)))

    def __iter__(self):
        indices = list(super().__iter__())
        if self._skip is not None and self._skip[0] == self.epoch:
            indices = indices[self._skip[1]:]
        self._skip = None
        return iter(indices)
