"""Test-time augmentation: flips (and 90-degree rotations in 2D), averaged in probability space.

Each transform is applied to the input, the model's probabilities are mapped back with the inverse
transform, and the maps are averaged. Averaging probabilities (not logits) keeps a multi-class
softmax a distribution and is what the hand-bone and vessel predecessor projects' ensembles do.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Transform = tuple[tuple[int, ...], int]  # (flip dims, number of 90-degree rotations in the last two dims)


def tta_transforms(spatial_dims: int, flips: bool = True, rot90: bool = True) -> list[Transform]:
    """The transforms of the TTA set, identity first. Dims index a ``(B, C, *spatial)`` tensor.

    2D with ``flips`` and ``rot90``: the 8 symmetries of the square (dihedral group D4).
    3D: identity plus the 7 non-empty combinations of flips along D, H, W (no rotations, since
    anisotropic voxels make them meaningless).
    """
    dims = list(range(2, 2 + spatial_dims))
    flip_sets: list[tuple[int, ...]] = [()]
    if flips:
        if spatial_dims == 2:
            flip_sets += [(dims[1],)]  # horizontal flip; with the 4 rotations this spans D4
        else:
            flip_sets += [tuple(d for j, d in enumerate(dims) if mask >> j & 1) for mask in range(1, 8)]
    rots = range(4) if (rot90 and spatial_dims == 2) else range(1)
    if spatial_dims == 2 and flips and not rot90:
        flip_sets = [(), (dims[0],), (dims[1],), tuple(dims)]
    return [(f, r) for f in flip_sets for r in rots]


def _forward(x: torch.Tensor, t: Transform) -> torch.Tensor:
    flip, rot = t
    if flip:
        x = torch.flip(x, flip)
    return torch.rot90(x, rot, dims=(-2, -1)) if rot else x


def _inverse(x: torch.Tensor, t: Transform) -> torch.Tensor:
    flip, rot = t
    if rot:
        x = torch.rot90(x, -rot, dims=(-2, -1))
    return torch.flip(x, flip) if flip else x


@torch.no_grad()
def tta_probs(
    probs_fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
    flips: bool = True, rot90: bool = True,
) -> torch.Tensor:
    """Mean of ``probs_fn`` over the TTA set. ``image``: ``(B, C, *spatial)``; ``probs_fn`` returns
    probabilities ``(B, C', *spatial)`` for an input of any spatial size."""
    transforms = tta_transforms(image.ndim - 2, flips, rot90)
    total = _inverse(probs_fn(_forward(image, transforms[0])), transforms[0])
    for t in transforms[1:]:
        total = total + _inverse(probs_fn(_forward(image, t)), t)
    return total / len(transforms)
