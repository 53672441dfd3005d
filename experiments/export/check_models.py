"""Which medseg models export, and how: ONNX (dynamic spatial axes or a fixed window) and TorchScript.

Every model of ``conf/model/`` at its ``debug=smoke`` size (random weights, CPU), through the same
functions ``medseg-export`` uses (each export is compared with PyTorch eager; see
``medseg/export/networks.py``). Prints a markdown table for ``docs/export.md``.

Run:  python experiments/export/check_models.py [--models unet smp ...]     (a few minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MODELS_2D = ["unet", "unet_valid", "residual_unet", "chained_unet", "smp", "smp_unetpp", "smp_deeplabv3plus",
             "segresnet", "unetr", "swinunetr", "hrnetv2", "fcn_resnet101"]
MODELS_3D = ["unet3d"]


def build(model: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
    data = ["data=brats_synth", "data.patch_size=[32,32,32]"] if model in MODELS_3D else ["data=drive_synth"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["debug=smoke", f"model={model}", *data])
    in_ch = 4 if model in MODELS_3D else 1
    extra = {"spatial_dims": 3 if model in MODELS_3D else 2} if "spatial_dims" in cfg.model else {}
    net = instantiate(cfg.model, in_channels=in_ch, out_channels=2, **extra).eval()
    return net, list(cfg.data.patch_size), in_ch, getattr(net, "size_divisor", 32)


def main() -> None:
    from medseg.errors import CheckpointError
    from medseg.export.networks import export_onnx, export_torchscript

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=MODELS_2D + MODELS_3D)
    args = ap.parse_args()
    rows = ["| model | window | ONNX | TorchScript |", "|---|---|---|---|"]
    for model in args.models:
        t0 = time.perf_counter()
        try:
            net, window, in_ch, div = build(model)
        except Exception as exc:  # a model that cannot even be built here is reported as such
            rows.append(f"| {model} | - | not built: {type(exc).__name__}: {str(exc)[:80]} | - |")
            continue
        cells = []
        with tempfile.TemporaryDirectory() as tmp:
            for name, fn in (("onnx", export_onnx), ("ts", export_torchscript)):
                try:
                    info = fn(net, window, in_ch, Path(tmp) / f"m.{name}", div)
                    how = (f"{info['exporter']} exporter, opset {info['opset']}, " if name == "onnx" else f"{info['method']}, ")
                    cells.append(how + ("dynamic spatial axes" if info["dynamic_spatial"] else "fixed window")
                                 + f" (max err {info['max_abs_error']:.0e})")
                except CheckpointError as exc:
                    cells.append("fails: " + str(exc)[:160].replace("|", "/"))
        rows.append(f"| {model} | {'x'.join(map(str, window))} | {cells[0]} | {cells[1]} |")
        print(rows[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
