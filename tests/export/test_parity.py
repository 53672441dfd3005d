"""Parity: the exported package, run by the standalone runner (ONNX Runtime or TorchScript), gives
medseg's own prediction: probabilities within 1e-4 on every pixel and identical masks, at sizes
that are not multiples of the window.

medseg's side is what ``medseg-predict input_dir=...`` does: ``read_input`` + the run's
preprocessing + ``model_probs`` (Predictor: MONAI sliding window) + ``Task.discretize``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from medseg.export import runner
from tests.conftest import compose_cfg

ATOL = 1e-4
BINARY = ["data=drive_synth", "data.root=/nonexistent/DRIVE"]
MULTILABEL = ["data=handbone_synth", "data.root=/nonexistent/handbone"]
HANDBONE_REAL_PREPROCESS = ("data.preprocess=[{_target_: medseg.data.preprocess.Resize, size: [512, 512]}, "
                            "{_target_: medseg.data.preprocess.MinMax, within_roi: false}]")
REGIONS_3D = ["data=brats_synth", "model=unet3d", "data.patch_size=[32,32,32]"]


@pytest.fixture(scope="module")
def brats_root(tmp_path_factory) -> Path:
    """A BraTS-layout folder (the reader then knows its 4 modalities and 3 regions)."""
    from medseg.data.synth.brats import write_brats

    return write_brats(tmp_path_factory.mktemp("brats") / "BraTS", n_cases=1, shape=(24, 24, 16), seed=1)


def medseg_prediction(run_dir: Path, path: Path, tta=False):
    """medseg's probabilities and masks for one input file (as medseg-predict computes them)."""
    from medseg.data.preprocess import Compose
    from medseg.evaluation import model_probs
    from medseg.pipelines.eval import load_model, load_run_config
    from medseg.pipelines.predict import _reader_info, read_input

    rc = load_run_config(run_dir)
    info = _reader_info(rc)
    case = Compose(instantiate(rc.data.get("preprocess")) or [])(read_input(path, info.in_channels))
    info.in_channels = int(case.image.shape[0])
    module, _ = load_model(rc, info, run_dir)
    probs = model_probs(module, tta)(case)
    return probs.numpy(), module.task.discretize(probs[None])[0].numpy(), case


def export(run_dir: Path, out: Path, *extra: str) -> Path:
    from medseg.pipelines.export import export_run

    return export_run(compose_cfg("export", [f"run_dir={run_dir}", *extra], out.parent / "log"), out)


def runner_prediction(package: Path, path: Path, engine: str | None = None):
    model = runner.Model(package, engine=engine)
    case = runner.read_input(path, int(model.manifest["input"]["channels"]))
    return model.predict(case["image"], case["roi"], case["meta"])


def assert_parity(ours, result):
    probs, masks, case = ours
    assert result["probs"].shape == probs.shape and result["masks"].shape == masks.shape
    err = float(np.abs(result["probs"] - probs).max())
    assert err <= ATOL, f"max |runner - medseg| = {err:.3g}"
    assert (result["masks"] == masks).all(), f"{int((result['masks'] != masks).sum())} mask pixels differ"
    # the comparison means something: the masks are neither empty nor full
    assert 0.02 < masks.mean() < 0.98
    return err


def _png(path: Path, shape, seed: int, rgb: bool) -> Path:
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    base = 120 + 80 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + rng.normal(0, 20, (h, w))
    arr = np.clip(base, 0, 255).astype(np.uint8)
    if rgb:
        arr = np.stack([arr, np.roll(arr, 3, 0), np.roll(arr, 5, 1)], -1)
    Image.fromarray(arr).save(path)
    return path


def _nifti(path: Path, shape, seed: int) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    brain = (grid ** 2).sum(0) < 0.7
    data = np.zeros((*shape, 4), np.float32)
    for c in range(4):
        data[..., c] = np.where(brain, 100 + 30 * c + rng.normal(0, 25, shape), 0)
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.5, 1.0])), str(path))
    return path


def test_2d_binary_parity_onnx_and_torchscript_with_tta(run_factory, tmp_path):
    run = run_factory("binary", BINARY)
    pkg = export(run, tmp_path / "pkg", "format=both", "tta=true")
    image = _png(tmp_path / "img.png", (97, 83), seed=1, rgb=True)
    ours = medseg_prediction(run, image, tta=True)
    for engine in ("onnx", "torchscript"):
        assert_parity(ours, runner_prediction(pkg, image, engine))


def test_2d_multilabel_parity_2048_subsampled(run_factory, tmp_path):
    """The hand-bone recipe: a 2048x2048 radiograph resized (anti-aliased) to 512, 29 overlapping classes."""
    run = run_factory("multilabel_512", [*MULTILABEL, HANDBONE_REAL_PREPROCESS], seed=1)
    pkg = export(run, tmp_path / "pkg")
    image = _png(tmp_path / "hand.png", (2048, 2048), seed=2, rgb=False)
    ours = medseg_prediction(run, image)
    assert ours[0].shape == (29, 512, 512)
    assert_parity(ours, runner_prediction(pkg, image))


def test_2d_multilabel_parity_odd_size(run_factory, tmp_path):
    run = run_factory("multilabel", MULTILABEL, seed=2)
    pkg = export(run, tmp_path / "pkg", "threshold=0.6")
    image = _png(tmp_path / "hand.png", (131, 77), seed=3, rgb=False)
    probs, _, case = medseg_prediction(run, image)
    masks = probs > 0.6  # the exported threshold
    assert_parity((probs, masks, case), runner_prediction(pkg, image))


def test_3d_multiregion_parity_odd_size_with_crop(run_factory, brats_root, tmp_path):
    run = run_factory("regions3d", [*REGIONS_3D, f"data.root={brats_root}"], seed=3)
    pkg = export(run, tmp_path / "pkg")
    volume = _nifti(tmp_path / "case.nii.gz", (45, 51, 37), seed=4)
    ours = medseg_prediction(run, volume)
    assert ours[0].shape[0] == 3  # whole tumour, tumour core, enhancing tumour
    result = runner_prediction(pkg, volume)
    assert result["case"]["meta"]["crop_bbox"] == ours[2].meta["crop_bbox"]
    assert_parity(ours, result)


@pytest.mark.slow
def test_3d_multiregion_parity_brats_size(run_factory, brats_root, tmp_path):
    run = run_factory("regions3d", [*REGIONS_3D, f"data.root={brats_root}"], seed=3)
    pkg = export(run, tmp_path / "pkg")
    volume = _nifti(tmp_path / "case.nii.gz", (240, 240, 155), seed=5)
    assert_parity(medseg_prediction(run, volume), runner_prediction(pkg, volume))


@pytest.mark.slow
def test_2d_multilabel_parity_full_2048(run_factory, tmp_path):
    """29 classes at 2048x2048 without resizing (windows of 128)."""
    run = run_factory("multilabel_2048", [*MULTILABEL, "data.patch_size=[128,128]"], seed=4)
    pkg = export(run, tmp_path / "pkg")
    image = _png(tmp_path / "hand.png", (2048, 2048), seed=6, rgb=False)
    assert_parity(medseg_prediction(run, image), runner_prediction(pkg, image))


def test_2d_binary_parity_with_a_field_of_view(run_factory, tmp_path):
    """ZScore inside the ROI (the DRIVE protocol): the runner's --roi gives medseg's statistics."""
    from dataclasses import replace

    from medseg.data.preprocess import Compose
    from medseg.evaluation import model_probs
    from medseg.pipelines.eval import load_model, load_run_config
    from medseg.pipelines.predict import _reader_info, read_input

    run = run_factory("binary", BINARY)
    pkg = export(run, tmp_path / "pkg")
    image = _png(tmp_path / "eye.png", (71, 66), seed=11, rgb=True)
    yy, xx = np.mgrid[:71, :66]
    fov = (yy - 35) ** 2 + (xx - 33) ** 2 < 30 ** 2
    rc = load_run_config(run)
    info = _reader_info(rc)
    case = Compose(instantiate(rc.data.preprocess))(replace(read_input(image, 3), roi=fov))
    module, _ = load_model(rc, info, run)
    probs = model_probs(module)(case).numpy()
    raw = runner.read_input(image, 3)
    result = runner.Model(pkg).predict(raw["image"], fov, raw["meta"])
    assert_parity((probs, probs > 0.5, case), result)
    without = runner.Model(pkg).predict(raw["image"], None, raw["meta"])
    assert np.abs(without["probs"] - probs).max() > 1e-3  # the ROI really changes the statistics


def test_3d_case_folder_one_nifti_per_modality_equals_the_brats_reader(run_factory, brats_root, tmp_path):
    """A BraTS case folder (flair, t1, t1ce, t2 files) given to the runner as it comes from the
    scanner export: the same probabilities as medseg's BraTS reader + preprocessing + model."""
    from medseg.data.formats.brats import BratsReader
    from medseg.data.preprocess import Compose
    from medseg.data.synth.brats import write_brats
    from medseg.evaluation import model_probs
    from medseg.pipelines.eval import load_model, load_run_config

    run = run_factory("regions3d", [*REGIONS_3D, f"data.root={brats_root}"], seed=3)
    pkg = export(run, tmp_path / "pkg")
    data = write_brats(tmp_path / "new", n_cases=1, shape=(41, 37, 29), seed=9)
    reader = BratsReader(data)
    case_id = reader.list_cases("training")[0]
    rc = load_run_config(run)
    case = Compose(instantiate(rc.data.preprocess))(reader.load_case(case_id))
    module, _ = load_model(rc, reader, run)
    probs = model_probs(module)(case).numpy()
    folder = reader.case_dir(case_id)
    assert runner.input_files([str(folder.parent)], ["flair", "t1", "t1ce", "t2"]) == [folder]
    model = runner.Model(pkg)
    raw = runner.read_case_folder(folder, model.manifest["input"]["modalities"])
    result = model.predict(raw["image"], None, raw["meta"])
    assert np.abs(result["probs"] - probs).max() <= ATOL
    np.testing.assert_array_equal(result["masks"], module.task.discretize(torch.from_numpy(probs)[None])[0].numpy())
