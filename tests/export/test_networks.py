"""Network export: dynamic spatial axes where the graph allows, a fixed window where it does not,
and a clear refusal naming the network when the package needs any size."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from medseg.errors import CheckpointError
from medseg.export.networks import export_onnx, export_torchscript


class SizeBound(torch.nn.Module):
    """A network whose output depends on its input size through a Python int (a traced graph freezes it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * (int(x.shape[-1]) / 32.0)


def test_unet_exports_with_dynamic_spatial_axes(tmp_path):
    from medseg.models.unet import UNet

    net = UNet(1, 2, spatial_dims=2, depth=2, base_channels=4).eval()
    info = export_onnx(net, [32, 32], 1, tmp_path / "m.onnx", size_divisor=4)
    assert info["dynamic_spatial"] and info["max_abs_error"] <= 1e-4
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 1, 44, 60)
    with torch.no_grad():
        ref = net(x).numpy()
    assert np.abs(sess.run(None, {"image": x.numpy()})[0] - ref).max() <= 1e-4


def test_size_bound_network_falls_back_to_a_fixed_window(tmp_path):
    net = SizeBound().eval()
    info = export_onnx(net, [32, 32], 1, tmp_path / "m.onnx", size_divisor=8, exporters=("legacy",))
    assert info["dynamic_spatial"] is False and info["window"] == [32, 32]
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 32, 32)  # any batch at the window size: what the sliding window feeds
    with torch.no_grad():
        ref = net(x).numpy()
    assert np.abs(sess.run(None, {"image": x.numpy()})[0] - ref).max() <= 1e-4


def test_size_bound_network_is_refused_when_any_size_is_needed(tmp_path):
    with pytest.raises(CheckpointError, match="SizeBound: cannot be exported to ONNX"):
        export_onnx(SizeBound().eval(), [32, 32], 1, tmp_path / "m.onnx", size_divisor=8, need_dynamic_spatial=True,
                    exporters=("legacy",))
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(CheckpointError, match="SizeBound: the TorchScript trace differs"):
        export_torchscript(SizeBound().eval(), [32, 32], 1, tmp_path / "m.ts", size_divisor=8, need_dynamic_spatial=True)


@pytest.mark.slow
def test_dynamo_exporter_alone_gives_a_checked_network(tmp_path):
    """The dynamo exporter (opset 18), the fallback when the legacy one is gone or fails."""
    from medseg.models.unet import UNet

    net = UNet(1, 2, spatial_dims=2, depth=2, base_channels=4).eval()
    info = export_onnx(net, [32, 32], 1, tmp_path / "m.onnx", size_divisor=4, exporters=("dynamo",))
    assert info["exporter"] == "dynamo" and info["opset"] == 18 and info["max_abs_error"] <= 1e-4


class WindowOnly(torch.nn.Module):
    """A network whose trace fails on any size but the window (a reshape to the traced size)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y.reshape(y.shape[0], 2, int(x.shape[2]), int(x.shape[3]))


def test_torchscript_trace_bound_to_the_window_is_a_fixed_window_export(tmp_path):
    info = export_torchscript(WindowOnly().eval(), [32, 32], 1, tmp_path / "m.ts", size_divisor=8)
    assert info["dynamic_spatial"] is False and info["max_abs_error"] <= 1e-4
