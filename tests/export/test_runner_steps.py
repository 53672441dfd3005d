"""The standalone runner's numpy steps equal medseg's: preprocessing, resizing, the Gaussian
sliding window (MONAI), TTA transforms and the decision rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.inferers import SlidingWindowInferer

from medseg.data import preprocess as P
from medseg.data.case import Case
from medseg.export import runner
from medseg.inference.inferers import PadToMultipleInferer, ResizeInferer
from medseg.inference.tta import tta_probs, tta_transforms
from medseg.tasks import Task


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, shape).astype(np.float32)


@pytest.mark.parametrize("step,fn,kwargs", [
    (P.GreenWeightedGray, runner.green_weighted_gray, {}),
    (P.ZScore, runner.zscore, {"within_roi": True}),
    (P.ZScore, runner.zscore, {"within_roi": False, "nonzero": True}),
    (P.ZScore, runner.zscore, {"within_roi": False, "mean": 0.4, "std": 0.2}),
    (P.ZScore, runner.zscore, {"within_roi": True, "mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 0.5]}),
    (P.ClipIntensity, runner.clip_intensity, {"low": 0.2, "high": 0.7}),
    (P.ClipIntensity, runner.clip_intensity, {"low": [0.1, 0.2, 0.3], "high": None}),
    (P.MinMax, runner.minmax, {"within_roi": True}),
    (P.MinMax, runner.minmax, {"within_roi": False}),
    (P.Gamma, runner.gamma, {"gamma": 1.7}),
    (P.CLAHE, runner.clahe, {"clip_limit": 0.02}),
])
def test_preprocess_steps_equal_medseg(step, fn, kwargs):
    image = _image((3, 37, 29))
    image[:, :5] = 0.0  # a zero border: the nonzero statistics differ from the whole image's
    roi = np.zeros((37, 29), bool)
    roi[4:30, 3:20] = True
    ours = step(**kwargs)(Case("c", image.copy(), roi=roi.copy())).image
    theirs = fn({"image": image.copy(), "roi": roi.copy(), "meta": {}}, **kwargs)["image"]
    assert theirs.dtype == np.float32 and theirs.shape == ours.shape
    np.testing.assert_array_equal(theirs, ours)


def test_crop_to_foreground_and_uncrop_equal_medseg():
    image = np.zeros((2, 20, 23, 17), np.float32)
    image[:, 3:15, 5:21, 2:11] = _image((2, 12, 16, 9))
    ours = P.CropToForeground(margin=1)(Case("c", image.copy()))
    theirs = runner.crop_to_foreground({"image": image.copy(), "roi": None, "meta": {}}, margin=1)
    np.testing.assert_array_equal(theirs["image"], ours.image)
    np.testing.assert_array_equal(theirs["roi"], ours.roi)
    assert theirs["meta"]["crop_bbox"] == ours.meta["crop_bbox"]
    back = runner.uncrop(theirs["image"], theirs["meta"])
    np.testing.assert_array_equal(back, P.uncrop(ours.image, ours.meta))
    assert back.shape == image.shape


@pytest.mark.parametrize("shape,size", [((1, 2048, 2048), (512, 512)), ((3, 101, 77), (64, 90)),
                                        ((1, 33, 47), (100, 121)), ((2, 11, 13, 9), (20, 7, 15))])
def test_resize_equals_torch_interpolate(shape, size):
    """medseg's Resize step is F.interpolate (anti-aliased when shrinking 2D); the runner's numpy
    version gives the same values (to float32 rounding)."""
    image = _image(shape, seed=1)
    ours = P.Resize(size)(Case("c", image.copy())).image
    theirs = runner.resize({"image": image.copy(), "roi": None, "meta": {}}, size)["image"]
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() < 1e-5
    # no antialias (the resize inference mode and 3D): plain bilinear / trilinear
    mode = "bilinear" if len(size) == 2 else "trilinear"
    ref = F.interpolate(torch.from_numpy(image)[None], size=size, mode=mode, align_corners=False)[0].numpy()
    assert np.abs(runner.resize_linear(image, size) - ref).max() < 1e-5


def _toy_net(in_ch: int, out_ch: int, nd: int):
    torch.manual_seed(0)
    conv = (torch.nn.Conv2d if nd == 2 else torch.nn.Conv3d)(in_ch, out_ch, 3, padding=1).eval()
    with torch.no_grad():
        conv.weight.mul_(5)

    def np_net(x):
        with torch.no_grad():
            return conv(torch.from_numpy(x)).numpy()
    return conv, np_net


@pytest.mark.parametrize("spatial,roi,overlap,batch", [
    ((67, 45), (32, 32), 0.25, 4), ((20, 90), (32, 32), 0.5, 64), ((32, 32), (32, 32), 0.25, 1),
    ((23, 31, 19), (16, 16, 16), 0.25, 3), ((9, 40, 41), (16, 16, 16), 0.3, 8),
])
def test_sliding_window_equals_monai(spatial, roi, overlap, batch):
    """Same windows, Gaussian weights, padding and crop as MONAI's sliding_window_inference
    (odd sizes, images smaller than a window along some axes, one-window images)."""
    conv, np_net = _toy_net(2, 3, len(spatial))
    image = _image((1, 2, *spatial), seed=2)
    ours = SlidingWindowInferer(roi, batch, overlap, mode="gaussian")(torch.from_numpy(image), conv).detach().numpy()
    theirs = runner.sliding_window(np_net, image, roi, batch, overlap)
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() < 1e-5


def test_whole_and_resize_modes_equal_predictor():
    conv, np_net = _toy_net(1, 2, 2)
    image = _image((1, 1, 45, 61), seed=3)
    whole = PadToMultipleInferer(16)(torch.from_numpy(image), conv).detach().numpy()
    assert np.abs(runner.pad_run_crop(np_net, image, 16) - whole).max() < 1e-5
    res = ResizeInferer((32, 40))(torch.from_numpy(image), conv).detach().numpy()
    theirs = runner.predict_logits(np_net, image, {"mode": "resize", "resize_to": [32, 40]})
    assert np.abs(theirs - res).max() < 1e-5


@pytest.mark.parametrize("nd,flips,rot90", [(2, True, True), (2, True, False), (3, True, True)])
def test_tta_equals_medseg(nd, flips, rot90):
    assert runner.tta_transforms(nd, flips, rot90) == tta_transforms(nd, flips, rot90)
    conv, np_net = _toy_net(1, 2, nd)
    image = _image((1, 1, *([13, 17] if nd == 2 else [9, 11, 7])), seed=4)
    ours = tta_probs(lambda x: torch.sigmoid(conv(x)), torch.from_numpy(image), flips, rot90).numpy()
    total = 0
    for t in runner.tta_transforms(nd, flips, rot90):
        total = total + runner._tta_inverse(runner.activation(np_net(runner._tta_forward(image, t)), "binary"), t)
    theirs = total / len(runner.tta_transforms(nd, flips, rot90))
    assert np.abs(theirs - ours).max() < 1e-6


@pytest.mark.parametrize("kind,classes", [("binary", ["a"]), ("multilabel", ["a", "b", "c"]), ("multiclass", ["a", "b"])])
def test_activation_and_decision_equal_task(kind, classes):
    task = Task(kind, classes, threshold=0.4)
    logits = torch.randn(1, task.out_channels, 15, 16, generator=torch.Generator().manual_seed(5)) * 3
    probs = task.activation(logits)
    np.testing.assert_allclose(runner.activation(logits.numpy(), kind), probs.numpy(), atol=1e-6)
    model = runner.Model.__new__(runner.Model)
    model.task, model.classes = kind, classes
    model.thresholds = np.full(len(classes), 0.4, np.float32)
    model.manifest = {}
    np.testing.assert_array_equal(model.decide(probs[0].numpy()), task.discretize(probs, 0.4)[0].numpy())


def test_postprocessing_keeps_largest_component_and_drops_small_ones():
    masks = np.zeros((2, 20, 20), bool)
    masks[0, 1:4, 1:4] = True     # 9 px
    masks[0, 10:18, 10:18] = True  # 64 px
    masks[1, 0:2, 0:2] = True      # 4 px
    masks[1, 5:10, 5:10] = True    # 25 px
    out = runner.postprocess(masks, {"a": {"largest_component": True}, "b": {"min_size": 5}}, ["a", "b"])
    assert out[0].sum() == 64 and out[0, 12, 12] and not out[0, 2, 2]
    assert out[1].sum() == 25 and not out[1, 0, 0]
    np.testing.assert_array_equal(runner.postprocess(masks, {}, ["a", "b"]), masks)
