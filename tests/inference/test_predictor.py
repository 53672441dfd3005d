from __future__ import annotations

import torch
from monai.inferers import sliding_window_inference

from medseg.inference.predictor import Predictor


def test_sliding_window_is_monais_gaussian_window():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(2, 3, 3, padding=1)
    image = torch.randn(1, 2, 50, 37)
    ours = Predictor("sliding_window", roi_size=(16, 16), overlap=0.5, sw_batch_size=4, output_device="cpu")(net, image)
    ref = sliding_window_inference(image, (16, 16), 4, net, overlap=0.5, mode="gaussian", sigma_scale=0.125,
                                   padding_mode="constant")
    assert ours.shape == (1, 3, 50, 37)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
