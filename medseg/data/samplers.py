"""Samplers for distributed evaluation.

Lightning's default ``DistributedSampler`` pads an uneven validation or test set by repeating samples
so that every rank gets the same number; :class:`~medseg.metrics.running.MeanPerImageDice` sums per-image
Dice and counts images, so a repeated image would be counted twice. Evaluation loaders therefore use
Lightning's ``UnrepeatedDistributedSampler``: every image on exactly one rank, the ranks' shares off by
at most one (per-rank step counts may differ; nothing in the evaluation steps synchronises per step).
"""

from __future__ import annotations

import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset, Sampler


def eval_sampler(dataset: Dataset) -> Sampler | None:
    """An unpadded, unshuffled distributed sampler when several processes run, else ``None``.

    Lightning leaves a loader that already has a ``DistributedSampler`` subclass as it is.

    Raises:
        ValueError: fewer images than processes (a rank with no image would hang the metric sync).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    world = dist.get_world_size()
    if len(dataset) < world:
        raise ValueError(f"{len(dataset)} evaluation images for {world} processes: every process needs at "
                         "least one (use fewer devices or a larger validation split)")
    return UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=dist.get_rank(), shuffle=False)
