"""CPU inference of an exported model: PyTorch eager (medseg's Predictor) vs TorchScript and ONNX
Runtime (the package's standalone runner), on the same inputs, the same threads, in one run.

* 2D: the classic U-Net of ``conf/model/unet.yaml`` (depth 4, 16 base channels), a 3-channel
  584x565 DRIVE-size image, binary, windows 128x128, sw_batch_size 16;
* 3D: the BraTS predecessor project's 3D U-Net (``conf/model/unet3d.yaml``: depth 4, 16 base channels, no norm),
  a 4-channel 128x128x96 volume (a cropped brain), 3 regions, windows 64^3, sw_batch_size 2.

Each engine computes the full probability map of the image (sliding window with Gaussian weights +
sigmoid). Time: median of ``--repeats`` calls, the engines interleaved in every repeat, after a
warm-up call each; reported as seconds and as the ratio eager / engine (> 1: faster than eager).
Equal output: max |probability - eager's| over every pixel. Memory: one call in a fresh process per
engine, which imports only what that engine needs (the runner is loaded from its file, without
medseg); peak RSS (``VmHWM``) of the whole process and its growth during the call.

Run:  python experiments/benchmarks/bench_export.py [--threads 2] [--repeats 3] [--cases 2d 3d]
Not a test: the times depend on the machine (and on what else runs on it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

ENGINES = ("eager", "torchscript", "onnxruntime")


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple[int, ...]
    classes: int
    roi: tuple[int, ...]
    base: int = 16
    depth: int = 4
    norm: str = "batch"
    sw_batch_size: int = 16
    overlap: float = 0.25

    @property
    def spatial_dims(self) -> int:
        return len(self.shape) - 1


CASES = {
    "2d": Case("2D 584x565 RGB, binary", (3, 584, 565), 1, (128, 128)),
    "3d": Case("3D 128x128x96, 4 ch, 3 regions", (4, 128, 128, 96), 3, (64, 64, 64), norm="none", sw_batch_size=2),
}


def build_net(case: Case):
    import torch

    from medseg.models.unet import UNet

    torch.manual_seed(0)
    return UNet(case.shape[0], case.classes, spatial_dims=case.spatial_dims, depth=case.depth,
                base_channels=case.base, norm=case.norm).eval()


def image_of(case: Case) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(case.shape).astype(np.float32)


def build_package(case: Case, folder: Path) -> Path:
    """A package with both networks (the same manifest keys medseg-export writes)."""
    from medseg.export import runner
    from medseg.export.networks import export_onnx, export_torchscript
    from medseg.export.package import write_checksums

    net = build_net(case)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    info = {"onnx": export_onnx(net, case.roi, case.shape[0], folder / "models" / "m.onnx"),
            "torchscript": export_torchscript(net, case.roi, case.shape[0], folder / "models" / "m.ts")}
    manifest = {
        "format_version": runner.FORMAT_VERSION,
        "task": {"kind": "binary" if case.classes == 1 else "multilabel",
                 "classes": [f"c{k}" for k in range(case.classes)]},
        "input": {"spatial_dims": case.spatial_dims, "channels": case.shape[0]},
        "network": {"in_channels": case.shape[0], "out_channels": case.classes},
        "preprocessing": {"steps": []},
        "inference": {"mode": "sliding_window", "roi_size": list(case.roi), "overlap": case.overlap,
                      "sw_batch_size": case.sw_batch_size, "blend": "gaussian", "sigma_scale": 0.125,
                      "size_divisor": 16},
        "tta": {"enabled": False}, "ensemble": {"method": "mean", "weights": None},
        "decision": {"thresholds": [0.5] * case.classes, "temperature": 1.0}, "postprocessing": {},
        "members": [{"files": {"onnx": "models/m.onnx", "torchscript": "models/m.ts"}, "export": info}],
    }
    (folder / "package.json").write_text(json.dumps(manifest))
    write_checksums(folder)
    return folder


def make_engine(engine: str, case: Case, package: Path, threads: int):
    """``image (C, *spatial) -> probabilities`` for one engine, built once."""
    if engine == "eager":
        import torch
        from monai.inferers import SlidingWindowInferer

        torch.set_num_threads(threads)
        net = build_net(case)
        predictor = SlidingWindowInferer(case.roi, sw_batch_size=case.sw_batch_size, overlap=case.overlap,
                                         mode="gaussian", padding_mode="constant")

        def eager(image: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return torch.sigmoid(predictor(torch.from_numpy(image)[None], net))[0].numpy()
        return eager
    model = load_runner().Model(package, engine="onnx" if engine == "onnxruntime" else "torchscript", threads=threads)
    return model.probabilities


def load_runner():
    """The standalone runner loaded from its file, as a deployment does (medseg not imported)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("runner", HERE.parents[1] / "medseg" / "export" / "runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_engines(case: Case, package: Path, threads: int, repeats: int):
    image = image_of(case)
    fns = {e: make_engine(e, case, package, threads) for e in ENGINES}
    outs = {e: fn(image) for e, fn in fns.items()}  # warm-up, and the outputs compared
    diffs = {e: float(np.abs(outs[e] - outs["eager"]).max()) for e in ENGINES}
    times: dict[str, list[float]] = {e: [] for e in ENGINES}
    for _ in range(repeats):
        for e, fn in fns.items():
            t0 = time.perf_counter()
            fn(image)
            times[e].append(time.perf_counter() - t0)
    return {e: statistics.median(v) for e, v in times.items()}, times, diffs


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_child(case: Case, engine: str, package: Path, threads: int) -> dict[str, int]:
    """Peak RSS of this process (``VmHWM``: unlike ``ru_maxrss`` it is not inherited from the
    parent across fork/exec) and its growth during one call (the high-water mark is reset to the
    current RSS just before the call through ``/proc/self/clear_refs``)."""
    fn = make_engine(engine, case, package, threads)
    image = image_of(case)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_bytes("VmRSS")
    out = fn(image)
    del out
    peak = _status_bytes("VmHWM")
    return {"peak": peak, "growth": peak - before}


def memory(case: Case, engine: str, package: Path, threads: int) -> dict[str, int]:
    arg = json.dumps({"case": asdict(case), "engine": engine, "package": str(package), "threads": threads})
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run([sys.executable, __file__, "--child", arg], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"memory of {engine} on {case.name} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(threads: int = 2, repeats: int = 3, cases: tuple[str, ...] = ("2d", "3d")) -> str:
    from common import header

    lines = [header(f"6. Exported model on CPU: PyTorch eager vs TorchScript vs ONNX Runtime ({threads} threads)"),
             ("Full-image probabilities of the same network and input; eager = medseg's Predictor (MONAI sliding "
              "window), TorchScript / ONNX Runtime = the package's standalone runner (numpy sliding window). "
              f"Time: median of {repeats} interleaved calls after a warm-up, {threads} intra-op threads in every "
              "engine; speed-up = eager time / engine time. Memory: one call in a fresh process per engine "
              "(peak RSS of the process; growth during the call). Max |diff| is against eager's probabilities."), "",
             "| case | engine | s / image | speed-up vs eager | max abs diff | peak RSS MiB | growth MiB |",
             "|---|---|---|---|---|---|---|"]
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for key in cases:
            case = CASES[key]
            package = build_package(case, Path(tmp) / key)
            med, all_times, diffs = time_engines(case, package, threads, repeats)
            mem = {e: memory(case, e, package, threads) for e in ENGINES}
            for e in ENGINES:
                row = (f"| {case.name} (U-Net depth {case.depth}, base {case.base}; windows "
                       f"{'x'.join(map(str, case.roi))}) | {e} | {med[e]:.2f} | {med['eager'] / med[e]:.2f}x | "
                       f"{diffs[e]:.1e} | {mem[e]['peak'] / 2**20:.0f} | {mem[e]['growth'] / 2**20:.0f} |")
                print(row, f"(times: {[round(t, 3) for t in all_times[e]]})", flush=True)
                lines.append(row)
    load.append(os.getloadavg()[0])
    lines += ["", f"1-minute load average of the machine (other jobs included): {load[0]:.1f} at the start, "
              f"{load[1]:.1f} at the end, on {os.cpu_count()} logical CPUs.", ""]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        spec = json.loads(a.child)
        c = spec["case"]
        case = Case(**{**c, "shape": tuple(c["shape"]), "roi": tuple(c["roi"])})
        print(json.dumps(memory_child(case, spec["engine"], Path(spec["package"]), int(spec["threads"]))))
    else:
        run(a.threads, a.repeats, tuple(a.cases))
