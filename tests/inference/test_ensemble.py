from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.inference.ensemble import combine, fit_weights
from medseg.tasks import Task


def test_mean_and_weighted_mean():
    a, b = torch.zeros(1, 2, 2), torch.ones(1, 2, 2)
    torch.testing.assert_close(combine([a, b]), torch.full((1, 2, 2), 0.5))
    torch.testing.assert_close(combine([a, b], "weighted", [1, 3]), torch.full((1, 2, 2), 0.75))
    with pytest.raises(ValueError, match="non-negative"):
        combine([a, b], "weighted", [1, -1])


def test_binary_majority_vote():
    task = Task("binary", ["vessel"])
    members = [torch.tensor([[[0.9, 0.1, 0.6]]]), torch.tensor([[[0.8, 0.2, 0.4]]]), torch.tensor([[[0.2, 0.7, 0.4]]])]
    vote = combine(members, "vote", task=task)
    assert task.discretize(vote[None])[0].tolist() == [[[True, False, False]]]


def test_multiclass_vote_is_plurality_label():
    task = Task("multiclass", ["a", "b"])
    def onehot(labels):
        return torch.nn.functional.one_hot(torch.tensor(labels), 3).T.float()[:, None, :]
    vote = combine([onehot([0, 1, 2]), onehot([1, 1, 2]), onehot([1, 2, 0])], "vote", task=task)
    assert vote.argmax(0)[0].tolist() == [1, 1, 2]


def test_fit_weights_prefers_the_informative_member():
    task = Task("binary", ["fg"])
    g = torch.Generator().manual_seed(0)
    targets = [torch.rand(1, 16, 16, generator=g) < 0.3 for _ in range(4)]
    good = [t.float() * 0.8 + 0.1 for t in targets]
    noise = [torch.rand(1, 16, 16, generator=g) for _ in targets]
    w = fit_weights([noise, good], targets, task)
    assert np.isclose(w.sum(), 1.0) and w[1] > w[0]
