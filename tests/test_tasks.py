import numpy as np
import pytest
import torch

from medseg.tasks import Task, discretize


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


def test_discretize_is_one_rule_for_torch_and_numpy():
    """The decision every command applies: per-channel thresholds on either array type, compared in the
    maps' dtype, arg-max along the class axis for multi-class maps."""
    probs = np.array([[[0.3, 0.45, 0.9]], [[0.3, 0.2, 0.71]]], dtype=np.float32)  # (C=2, 1, 3)
    want = [[[False, True, True]], [[False, False, True]]]
    assert discretize("multilabel", probs, [0.4, 0.7]).tolist() == want
    assert discretize("multilabel", torch.from_numpy(probs), [0.4, 0.7]).tolist() == want
    # a float32 0.3 is not above the threshold 0.3, for a scalar and a per-channel threshold alike
    assert not discretize("multilabel", probs, 0.3)[:, 0, 0].any()
    assert not discretize("multilabel", probs, [0.3, 0.3])[:, 0, 0].any()
    assert discretize("binary", probs[:1], None).tolist() == [[[False, False, True]]]  # None: 0.5
    with pytest.raises(ValueError, match="3 thresholds for 2 channels"):
        discretize("multilabel", probs, [0.1, 0.2, 0.3])
    # multi-class: one map per foreground class; the class axis of a batch is 1
    mc = np.array([[[0.6, 0.1]], [[0.3, 0.2]], [[0.1, 0.7]]], dtype=np.float32)  # (C=3, 1, 2)
    assert discretize("multiclass", mc).tolist() == [[[False, False]], [[False, True]]]
    batch = torch.from_numpy(np.stack([mc, mc]))
    assert Task("multiclass", ["a", "b"]).discretize(batch).tolist() == [discretize("multiclass", mc).tolist()] * 2
    assert Task("multilabel", ["a", "b"]).discretize(torch.from_numpy(probs)[None], [0.4, 0.7])[0].tolist() == want
