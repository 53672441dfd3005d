"""Export a network to ONNX (``torch.onnx.export``) and TorchScript (``torch.jit.trace``), each
checked against PyTorch eager on two input sizes before it is accepted (TorchScript is frozen:
``torch.jit.freeze`` folds the weights and batch norms into the graph).

ONNX: dynamic batch *and* spatial axes are tried first, with the TorchScript-based exporter
(``dynamo=False``, opset 17) and then the dynamo exporter (opset 18; it specialises medseg's U-Net
to one size, because the U-Net checks divisibility in Python); a network whose graph fixes its
spatial size (a valid-padding U-Net computes its crop from the size) falls back to a dynamic batch
with a fixed window size, which is fine for sliding-window inference: it only ever feeds windows
of one size. Every attempt is accepted only if ONNX Runtime matches eager PyTorch. What was chosen is returned
and written into ``package.json``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import CheckpointError
from medseg.inference.inferers import DEFAULT_SIZE_DIVISOR

log = logging.getLogger(__name__)

#: ONNX opsets of the two exporters (the dynamo exporter's minimum is 18)
OPSET_DYNAMO, OPSET_LEGACY = 18, 17
#: largest |eager - exported| logit accepted at export time (logits up to 10; relative beyond)
EXPORT_TOLERANCE = 1e-4


def _check_outputs(run, net: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """Largest |exported - eager| logit over ``inputs``, in units of the tolerance's scale: the
    absolute error for logits up to 10, relative beyond (float32 rounding grows with the values; a
    randomly initialised HRNet has logits of 1e6)."""
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            ref = net(x).numpy()
        out = np.asarray(run(x.numpy()))
        if out.shape != ref.shape:
            return float("inf")
        scale = max(1.0, float(np.abs(ref).max()) / 10.0)
        worst = max(worst, float(np.abs(out - ref).max()) / scale)
    return worst


def _ort_runner(path: Path):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def _export(net: torch.nn.Module, example: torch.Tensor, path: Path, exporter: str, dynamic_spatial: bool) -> None:
    nd = example.ndim - 2
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            from torch.export import Dim

            shapes = {0: Dim("batch", min=1, max=4096)}
            if dynamic_spatial:
                shapes.update({2 + i: Dim(f"spatial{i}", min=8, max=8192) for i in range(nd)})
            torch.onnx.export(net, (example,), str(path), input_names=["image"], output_names=["logits"],
                              dynamic_shapes={next(iter(_forward_arg(net))): shapes}, dynamo=True,
                              opset_version=OPSET_DYNAMO, external_data=False)
        else:
            axes = {0: "batch", **({2 + i: f"spatial{i}" for i in range(nd)} if dynamic_spatial else {})}
            torch.onnx.export(net, (example,), str(path), input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": axes, "logits": axes}, dynamo=False,
                              opset_version=OPSET_LEGACY)


def _forward_arg(net: torch.nn.Module) -> list[str]:
    import inspect

    return [p for p in inspect.signature(net.forward).parameters if p != "self"][:1] or ["x"]


def export_onnx(net: torch.nn.Module, window: Sequence[int], in_channels: int, path: str | Path,
                size_divisor: int = DEFAULT_SIZE_DIVISOR, need_dynamic_spatial: bool = False,
                exporters: Sequence[str] = ("legacy", "dynamo")) -> dict[str, Any]:
    """Write ``net`` (eval mode, CPU) to ``path``; returns ``{"exporter", "opset", "dynamic_spatial",
    "max_abs_error"}``. ``exporters``: which to try, in order. Raises :class:`CheckpointError`
    naming the network if no way works."""
    path = Path(path)
    net = net.eval().cpu()
    window = [int(w) for w in window]
    example = torch.randn(2, in_channels, *window, generator=torch.Generator().manual_seed(0))
    other = [max(w + size_divisor, size_divisor * 2) for w in window]  # a second size, valid for the net
    checks_fixed = [example, torch.randn(3, in_channels, *window, generator=torch.Generator().manual_seed(1))]
    checks_dynamic = checks_fixed + [torch.randn(1, in_channels, *other, generator=torch.Generator().manual_seed(2))]
    # legacy first: it keeps medseg's U-Nets dynamic and takes a second where dynamo takes several
    attempts = [(e, True) for e in exporters] + ([] if need_dynamic_spatial else [(e, False) for e in exporters])
    errors = []
    for exporter, dynamic in attempts:
        try:
            _export(net, example, path, exporter, dynamic)
            err = _check_outputs(_ort_runner(path), net, checks_dynamic if dynamic else checks_fixed)
        except Exception as exc:  # exporters raise many types; each failure is reported below
            errors.append(f"{exporter}{' dynamic' if dynamic else ' fixed-window'}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        if err <= EXPORT_TOLERANCE:
            log.info("%s: ONNX via the %s exporter, %s spatial axes (max |error| %.2g)", type(net).__name__,
                     exporter, "dynamic" if dynamic else "fixed", err)
            return {"exporter": exporter, "opset": OPSET_DYNAMO if exporter == "dynamo" else OPSET_LEGACY,
                    "dynamic_spatial": dynamic, "window": window, "max_abs_error": err}
        errors.append(f"{exporter}{' dynamic' if dynamic else ' fixed-window'}: outputs differ from PyTorch by {err:.3g}")
    path.unlink(missing_ok=True)
    raise CheckpointError(f"{type(net).__name__}: cannot be exported to ONNX ({'; '.join(errors)}). "
                          "Export with format=torchscript, or use a model that exports (unet, unet3d, smp).")


def export_torchscript(net: torch.nn.Module, window: Sequence[int], in_channels: int, path: str | Path,
                       size_divisor: int = DEFAULT_SIZE_DIVISOR, need_dynamic_spatial: bool = False) -> dict[str, Any]:
    """``torch.jit.trace`` ``net`` to ``path``, checked on the window size (and a second size when the
    package needs any size). Raises :class:`CheckpointError` naming the network when it fails."""
    path = Path(path)
    net = net.eval().cpu()
    window = [int(w) for w in window]
    example = torch.randn(2, in_channels, *window, generator=torch.Generator().manual_seed(0))
    other = [max(w + size_divisor, size_divisor * 2) for w in window]
    checks = [example, torch.randn(3, in_channels, *window, generator=torch.Generator().manual_seed(1))]
    dynamic_checks = [torch.randn(1, in_channels, *other, generator=torch.Generator().manual_seed(2))]
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # frozen: weights become constants and conv+batch-norm fold (about 1.6x faster than the
            # bare trace on a U-Net on CPU, measured); the check below still holds it to eager
            traced = torch.jit.freeze(torch.jit.trace(net, example, check_trace=False).eval())
            traced.save(str(path))
            loaded = torch.jit.load(str(path), map_location="cpu").eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return loaded(torch.from_numpy(x)).numpy()
        err = _check_outputs(run, net, checks)
        try:
            dyn_err = _check_outputs(run, net, dynamic_checks)
        except Exception:  # a trace frozen to the window size fails on another size: fixed window
            dyn_err = float("inf")
    except Exception as exc:  # tracing raises many types; the message names the network
        path.unlink(missing_ok=True)
        raise CheckpointError(f"{type(net).__name__}: cannot be traced to TorchScript ({type(exc).__name__}: "
                              f"{str(exc)[:300]}). Export with format=onnx.") from exc
    dynamic = dyn_err <= EXPORT_TOLERANCE
    if err > EXPORT_TOLERANCE or (need_dynamic_spatial and not dynamic):
        path.unlink(missing_ok=True)
        raise CheckpointError(f"{type(net).__name__}: the TorchScript trace differs from PyTorch "
                              f"(max |error| {max(err, dyn_err if need_dynamic_spatial else 0):.3g}). Export with format=onnx.")
    return {"method": "trace+freeze", "dynamic_spatial": dynamic, "window": window, "max_abs_error": err}
