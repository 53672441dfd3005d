"""Every loss against a value computed by hand on a tiny tensor, for each task convention, plus
finite gradients on empty masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medseg.losses.compound import WeightedSum
from medseg.losses.deep_supervision import DeepSupervisionLoss
from medseg.losses.nll import StochasticWeightedNLL, WeightedNLL
from medseg.losses.overlap import Focal, SoftDice, SoftIoU, Tversky
from medseg.losses.pixel import BCEWithLogits, CrossEntropy

# one image, 1 channel, 2x2 pixels
Z = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
T = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
P = [1 / (1 + math.exp(-v)) for v in (2.0, -1.0, 0.5, -3.0)]
TT = [1.0, 0.0, 1.0, 1.0]


def test_bce_pos_weight_matches_hand_value():
    pw = 3.0
    expected = -sum(pw * t * math.log(p) + (1 - t) * math.log(1 - p) for p, t in zip(P, TT)) / 4
    assert BCEWithLogits(pos_weight=[pw])(Z, T).item() == pytest.approx(expected, rel=1e-5)
    plain = -sum(t * math.log(p) + (1 - t) * math.log(1 - p) for p, t in zip(P, TT)) / 4
    assert BCEWithLogits()(Z, T).item() == pytest.approx(plain, rel=1e-5)


def test_bce_per_channel_pos_weight_and_wrong_count():
    z2, t2 = torch.cat([Z, Z], 1), torch.cat([T, T], 1)
    both = BCEWithLogits(pos_weight=[1.0, 3.0])(z2, t2)
    expected = (BCEWithLogits()(Z, T) + BCEWithLogits(pos_weight=3.0)(Z, T)) / 2
    assert both.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="pos_weight has 3 values for 2 channels"):
        BCEWithLogits(pos_weight=[1.0, 2.0, 3.0])(z2, t2)
    with pytest.raises(ValueError, match="multi-class"):
        BCEWithLogits()(Z, T.long())


def test_soft_dice_binary_matches_hand_value():
    inter, sp, st = sum(p * t for p, t in zip(P, TT)), sum(P), sum(TT)
    s = 1.0
    expected = 1 - (2 * inter + s) / (sp + st + s)
    got = SoftDice(smooth_nr=s, smooth_dr=s)(Z, T)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_soft_iou_matches_hand_value():
    inter, sp, st = sum(p * t for p, t in zip(P, TT)), sum(P), sum(TT)
    expected = 1 - inter / (sp + st - inter)
    assert SoftIoU(smooth_nr=0.0, smooth_dr=1e-9)(Z, T).item() == pytest.approx(expected, rel=1e-5)


def test_tversky_matches_hand_value():
    a, b = 0.3, 0.7
    tp = sum(p * t for p, t in zip(P, TT))
    fp = sum(p * (1 - t) for p, t in zip(P, TT))
    fn = sum((1 - p) * t for p, t in zip(P, TT))
    expected = 1 - tp / (tp + a * fp + b * fn)
    assert Tversky(alpha=a, beta=b, smooth_nr=0.0, smooth_dr=1e-9)(Z, T).item() == pytest.approx(expected, rel=1e-5)


def test_binary_focal_matches_hand_value():
    g = 2.0
    terms = [-(1 - p) ** g * math.log(p) if t else -(p**g) * math.log(1 - p) for p, t in zip(P, TT)]
    assert Focal(gamma=g)(Z, T).item() == pytest.approx(sum(terms) / 4, rel=1e-4)


# multi-class: 3 classes on 1x2 pixels, targets 2 and 0
ZM = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.5]], [[3.0, -1.0]]]])
TM = torch.tensor([[[[2, 0]]]])


def _softmax_pixels():
    return torch.softmax(ZM, 1)[0, :, 0].T.tolist()  # [[p0, p1, p2] per pixel]


def test_cross_entropy_class_weights_match_hand_value():
    w = [0.2, 1.0, 3.0]
    probs = _softmax_pixels()
    labels = [2, 0]
    num = sum(-w[c] * math.log(p[c]) for p, c in zip(probs, labels))
    expected = num / sum(w[c] for c in labels)
    assert CrossEntropy(weight=w)(ZM, TM).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="2 values for 3 classes"):
        CrossEntropy(weight=[1.0, 2.0])(ZM, TM)


def test_multiclass_dice_with_class_weights_matches_hand_value():
    probs = _softmax_pixels()
    onehot = [[0, 0, 1], [1, 0, 0]]
    per_class = []
    for c in range(3):
        inter = sum(p[c] * o[c] for p, o in zip(probs, onehot))
        den = sum(p[c] for p in probs) + sum(o[c] for o in onehot)
        per_class.append(1 - 2 * inter / den)
    w = [0.25, 0.25, 0.5]
    got = SoftDice(weight=w, smooth_nr=0.0, smooth_dr=1e-9)(ZM, TM)
    # MONAI weights each class's Dice loss, then averages over classes
    assert got.item() == pytest.approx(sum(wi * d for wi, d in zip(w, per_class)) / 3, rel=1e-5)
    unweighted = SoftDice(smooth_nr=0.0, smooth_dr=1e-9)(ZM, TM)
    assert unweighted.item() == pytest.approx(sum(per_class) / 3, rel=1e-5)


def test_categorical_focal_matches_hand_value():
    probs = _softmax_pixels()
    onehot = [[0, 0, 1], [1, 0, 0]]
    # MONAI's softmax focal: -(1-p)^g log p on the true class, mean over classes and pixels
    g = 2.0
    total = sum(-((1 - p[c]) ** g) * math.log(p[c]) * o[c] for p, o in zip(probs, onehot) for c in range(3))
    assert Focal(gamma=g)(ZM, TM).item() == pytest.approx(total / 6, rel=1e-4)


def test_multilabel_dice_is_per_channel_sigmoid():
    z = torch.cat([Z, -Z], 1)
    t = torch.cat([T, 1 - T], 1)
    both = SoftDice(smooth_nr=0.0, smooth_dr=1e-9)(z, t)
    each = [SoftDice(smooth_nr=0.0, smooth_dr=1e-9)(z[:, i:i + 1], t[:, i:i + 1]) for i in range(2)]
    assert both.item() == pytest.approx(sum(e.item() for e in each) / 2, rel=1e-5)


def test_one_channel_ce_equals_bce():
    """A 1-channel logit z read as the pair (0, z): softmax CE == sigmoid BCE."""
    assert CrossEntropy()(Z, T).item() == pytest.approx(BCEWithLogits()(Z, T).item(), rel=1e-5)
    assert WeightedNLL()(Z, T).item() == pytest.approx(BCEWithLogits()(Z, T).item(), rel=1e-5)


def test_nll_refuses_multilabel_targets():
    with pytest.raises(ValueError, match="multi-label"):
        WeightedNLL()(torch.cat([Z, Z], 1), torch.cat([T, T], 1))


def test_stochastic_nll_draws_vessel_weight_in_range_and_matches_weighted_nll():
    loss = StochasticWeightedNLL(alpha=4.0)
    z2 = torch.cat([torch.zeros_like(Z), Z], 1)
    drawn = []
    for seed in range(20):
        torch.manual_seed(seed)
        value = loss(z2, T)
        w = loss.last_weight
        drawn.append(w)
        assert 1.0 <= w <= 4.0
        assert value.item() == pytest.approx(WeightedNLL(weight=[1.0, w])(z2, T).item(), rel=1e-5)
    assert max(drawn) - min(drawn) > 1.0  # actually random, not a constant
    loss.eval()
    loss(z2, T)
    assert loss.last_weight == pytest.approx(2.5)
    with pytest.raises(ValueError, match="alpha must be >= 1"):
        StochasticWeightedNLL(alpha=0.5)


LOSSES = {
    "bce": lambda: BCEWithLogits(pos_weight=2.0),
    "dice": lambda: SoftDice(batch=True),
    "iou": lambda: SoftIoU(batch=True),
    "tversky": lambda: Tversky(batch=True),
    "focal": lambda: Focal(),
    "ce": lambda: CrossEntropy(),
    "nll": lambda: StochasticWeightedNLL(alpha=3.0),
}


# BCE is for float multi-hot targets: no multiclass case for it
@pytest.mark.parametrize("name, task", [(n, t) for n in sorted(LOSSES) for t in ("binary", "multiclass")
                                        if not (t == "multiclass" and n == "bce")])
def test_gradient_is_finite_on_empty_masks(name, task):
    torch.manual_seed(0)
    c = 1 if task == "binary" else 3
    logits = torch.randn(2, c, 8, 8, requires_grad=True)
    target = torch.zeros(2, 1, 8, 8) if task == "binary" else torch.zeros(2, 1, 8, 8, dtype=torch.long)
    value = LOSSES[name]()(logits, target)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_weighted_sum_of_terms_matches_parts():
    loss = WeightedSum({"bce": {"weight": 0.5, "loss": BCEWithLogits()},
                        "dice": {"weight": 2.0, "loss": SoftDice()},
                        "iou": {"weight": 0.0, "loss": SoftIoU()}})
    expected = 0.5 * BCEWithLogits()(Z, T) + 2.0 * SoftDice()(Z, T)
    assert loss(Z, T).item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(loss.last_terms) == {"bce", "dice"}


def test_deep_supervision_weights_outputs_and_resizes_aux():
    base = BCEWithLogits()
    z = torch.randn(1, 1, 8, 8)
    aux = torch.randn(1, 1, 4, 4)
    t = (torch.rand(1, 1, 8, 8) > 0.5).float()
    ds = DeepSupervisionLoss(base, weights=[1.0, 0.5])
    aux_up = F.interpolate(aux, size=(8, 8), mode="bilinear", align_corners=False)
    assert ds((z, aux), t).item() == pytest.approx((base(z, t) + 0.5 * base(aux_up, t)).item(), rel=1e-6)
    assert ds(z, t).item() == pytest.approx(base(z, t).item())
    default = DeepSupervisionLoss(base)((z, z), t)  # weights 2/3, 1/3
    assert default.item() == pytest.approx(base(z, t).item(), rel=1e-6)
    with pytest.raises(ValueError, match="2 weights for 3 outputs"):
        ds((z, z, z), t)
