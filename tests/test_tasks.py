import pytest
import torch

from medseg.tasks import Task


def test_binary_rules():
    t = Task("binary", ["vessel"], threshold=0.5)
    assert t.out_channels == 1 and t.n_scored == 1
    logits = torch.tensor([[[[-2.0, 0.1]]]])  # (1,1,1,2)
    assert t.discretize(t.activation(logits)).tolist() == [[[[False, True]]]]
    mask = torch.tensor([[[0, 1]]])
    assert t.target_to_binary(mask).shape == (1, 1, 1, 2)
    assert t.loss_target(mask).dtype == torch.float32


def test_multiclass_argmax_excludes_background():
    t = Task("multiclass", ["a", "b"])
    assert t.out_channels == 3
    logits = torch.tensor([[[[5.0, 0.0, 0.0]], [[0.0, 5.0, 0.0]], [[0.0, 0.0, 5.0]]]])  # (1,3,1,3)
    pred = t.discretize(t.activation(logits))
    assert pred.shape == (1, 2, 1, 3)
    assert pred[0, 0].tolist() == [[False, True, False]] and pred[0, 1].tolist() == [[False, False, True]]
    mask = torch.tensor([[[0, 1, 2]]])
    assert torch.equal(t.target_to_binary(mask), pred)
    assert t.loss_target(mask).shape == (1, 1, 1, 3) and t.loss_target(mask).dtype == torch.long


def test_multilabel_overlapping_classes():
    t = Task("multilabel", ["a", "b"], threshold=0.3)
    probs = torch.tensor([[[[0.4]], [[0.9]]]])
    assert t.discretize(probs).flatten().tolist() == [True, True]
    assert t.discretize(probs, threshold=0.5).flatten().tolist() == [False, True]


def test_bad_task():
    with pytest.raises(ValueError, match="task must be one of"):
        Task("regression", ["x"])
    with pytest.raises(ValueError, match="exactly one class"):
        Task("binary", ["a", "b"])
