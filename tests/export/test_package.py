"""The package: what it holds, checksums that refuse tampered / missing / added files and newer
format versions, the runner working without medseg, the fold ensemble, the model card and
medseg-predict package=."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medseg.errors import CheckpointError
from medseg.export import runner
from medseg.export.package import load_package, write_checksums
from tests.conftest import compose_cfg
from tests.export.conftest import make_run
from tests.export.test_parity import ATOL, BINARY, _png, export, medseg_prediction


@pytest.fixture(scope="module")
def binary_package(run_factory, tmp_path_factory) -> Path:
    run = run_factory("binary", BINARY)
    return export(run, tmp_path_factory.mktemp("pkg") / "pkg", "format=both", "licence=CC-BY-4.0")


def _copy(pkg: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pkg, tmp_path / "copy"))


def test_package_contents_and_checksums(binary_package):
    names = {p.relative_to(binary_package).as_posix() for p in binary_package.rglob("*") if p.is_file()}
    assert names == {"package.json", "runner.py", "model_card.md", "model_card.json", "checksums.sha256",
                     "models/member_0.onnx", "models/member_0.ts"}
    manifest = runner.verify_package(binary_package)
    assert manifest["format_version"] == runner.FORMAT_VERSION
    onnx_info = manifest["members"][0]["export"]["onnx"]
    assert onnx_info["opset"] in (17, 18) and onnx_info["max_abs_error"] <= 1e-4
    assert manifest["preprocessing"]["steps"] == [{"name": "ZScore", "args": {"eps": 1e-6, "nonzero": False,
                                                                               "within_roi": True, "mean": None,
                                                                               "std": None}}]
    if shutil.which("sha256sum"):  # the list is in sha256sum's format: verifiable without Python
        done = subprocess.run(["sha256sum", "--quiet", "-c", "checksums.sha256"], cwd=binary_package,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert (binary_package / "runner.py").read_bytes() == Path(runner.__file__).read_bytes()


@pytest.mark.parametrize("damage", ["modify", "delete", "add", "newer", "no_checksums"])
def test_damaged_package_is_refused_naming_the_file(binary_package, tmp_path, damage):
    pkg = _copy(binary_package, tmp_path)
    if damage == "modify":
        data = bytearray((pkg / "models" / "member_0.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (pkg / "models" / "member_0.onnx").write_bytes(bytes(data))
        expected = ["member_0.onnx", "checksum mismatch"]
    elif damage == "delete":
        (pkg / "model_card.md").unlink()
        expected = ["model_card.md", "missing"]
    elif damage == "add":
        (pkg / "models" / "extra.onnx").write_bytes(b"x")
        expected = ["extra.onnx", "not listed"]
    elif damage == "newer":
        manifest = json.loads((pkg / "package.json").read_text())
        manifest["format_version"] = runner.FORMAT_VERSION + 1
        (pkg / "package.json").write_text(json.dumps(manifest))
        write_checksums(pkg)  # consistent checksums: only the version is wrong
        expected = ["package.json", f"format version {runner.FORMAT_VERSION + 1} is newer"]
    else:
        (pkg / "checksums.sha256").unlink()
        expected = ["checksums.sha256", "missing"]
    with pytest.raises(CheckpointError) as err:
        load_package(pkg)
    for text in expected:
        assert text in str(err.value)


def test_standalone_runner_without_medseg_torch_or_hydra(binary_package, tmp_path):
    """runner.py, run from the package folder in a Python where medseg, torch, Lightning, Hydra and
    MONAI cannot be imported, writes the same masks as the in-process runner."""
    image = _png(tmp_path / "eye.png", (61, 75), seed=7, rgb=True)
    blocked = ["medseg", "torch", "lightning", "hydra", "omegaconf", "monai"]
    code = ("import runpy, sys\n"
            f"for m in {blocked!r}: sys.modules[m] = None\n"
            f"sys.argv = ['runner.py', {str(image)!r}, '--out', {str(tmp_path / 'out')!r}, '--save-probs']\n"
            "runpy.run_path('runner.py', run_name='__main__')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=binary_package, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "eye.png"))
    expected = medseg_prediction(_run_of(binary_package), image)
    np.testing.assert_array_equal(mask > 0, expected[1][0])
    assert np.abs(np.load(tmp_path / "out" / "probs" / "eye.npy") - expected[0]).max() <= ATOL
    assert "eye" in (tmp_path / "out" / "predictions.csv").read_text()


def _run_of(package: Path) -> Path:
    return Path(json.loads((package / "package.json").read_text())["source"]["run_dir"])


def test_runner_exit_status_on_tampered_package(binary_package, tmp_path):
    pkg = _copy(binary_package, tmp_path)
    (pkg / "models" / "member_0.ts").write_bytes(b"not a network")
    image = _png(tmp_path / "eye.png", (40, 40), seed=8, rgb=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(pkg / "runner.py"), str(image), "--out", str(tmp_path / "o")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4
    assert "member_0.ts: checksum mismatch" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def kfold_folder(tmp_path_factory) -> Path:
    """A k-fold folder of two finished folds with its score tables."""
    root = tmp_path_factory.mktemp("kfold") / "cv"
    for k in range(2):
        make_run(root / f"fold_{k}", BINARY, seed=10 + k)
    ids = [f"c{i}" for i in range(8)]
    pd.DataFrame({"dice": np.linspace(0.6, 0.8, 8), "iou": np.linspace(0.4, 0.6, 8)},
                 index=pd.Index(ids, name="case_id")).to_csv(root / "oof_per_image.csv")
    test = root / "ensemble" / "models" / "cv"
    test.mkdir(parents=True)
    pd.DataFrame({"dice": [0.7, 0.9], "iou": [0.5, 0.8]}, index=pd.Index(["t0", "t1"], name="case_id")).to_csv(
        test / "per_image.csv")
    return root


def test_kfold_package_is_the_fold_ensemble_and_card_has_cv_scores(kfold_folder, tmp_path):
    import torch

    from medseg.inference.ensemble import combine

    pkg = export(kfold_folder, tmp_path / "pkg", "name=vessels_cv")
    manifest = runner.verify_package(pkg)
    assert [m["name"] for m in manifest["members"]] == ["fold_0", "fold_1"]
    image = _png(tmp_path / "eye.png", (53, 67), seed=9, rgb=True)
    folds = [medseg_prediction(kfold_folder / f"fold_{k}", image) for k in range(2)]
    ours = combine([torch.from_numpy(p) for p, _, _ in folds]).numpy()
    model = runner.Model(pkg)
    case = runner.read_input(image, 3)
    result = model.predict(case["image"])
    assert np.abs(result["probs"] - ours).max() <= ATOL
    np.testing.assert_array_equal(result["masks"], ours > 0.5)
    assert np.abs(folds[0][0] - folds[1][0]).max() > 0.05  # two different members, really averaged

    card = json.loads((pkg / "model_card.json").read_text())
    cv, test = card["scores"]
    assert "out-of-fold" in cv["source"] and cv["n_cases"] == 8
    assert cv["metrics"]["dice"]["mean"] == pytest.approx(0.7)
    lo, hi = cv["metrics"]["dice"]["ci95"]
    assert 0.6 < lo < 0.7 < hi < 0.8
    assert test["metrics"]["dice"]["mean"] == pytest.approx(0.8) and test["n_cases"] == 2
    md = (pkg / "model_card.md").read_text()
    for text in ("# Model card: vessels_cv", "binary", "ZScore", "0.7000", "Intended use", "Licence", "onnxruntime"):
        assert text in md


def test_medseg_predict_from_package_equals_run_folder(run_factory, binary_package, tmp_path):
    """medseg-predict package=... writes the same masks as medseg-predict run_dir=..."""
    from medseg.pipelines.predict import predict

    images = tmp_path / "images"
    images.mkdir()
    for i, shape in enumerate([(45, 71), (64, 33)]):
        _png(images / f"im{i}.png", shape, seed=20 + i, rgb=True)
    run = run_factory("binary", BINARY)
    a = predict(compose_cfg("predict", [f"run_dir={run}", f"input_dir={images}"], tmp_path / "a"), tmp_path / "a")
    b = predict(compose_cfg("predict", [f"package={binary_package}", f"input_dir={images}", "engine=torchscript"],
                            tmp_path / "b"), tmp_path / "b")
    assert list(a.index) == list(b.index) == ["im0", "im1"]
    for name in ("im0", "im1"):
        ma = np.asarray(Image.open(tmp_path / "a" / "masks" / f"{name}.png"))
        mb = np.asarray(Image.open(tmp_path / "b" / "masks" / f"{name}.png"))
        np.testing.assert_array_equal(ma, mb)
        assert 0 < (ma > 0).mean() < 1


def test_runner_imports_only_numpy_engines_and_readers():
    """runner.py imports nothing of medseg, Lightning, Hydra or MONAI: only the standard library,
    numpy, an engine (onnxruntime / torch) and optional readers / postprocessing."""
    import ast

    allowed = {"numpy", "onnxruntime", "torch", "PIL", "nibabel", "scipy", "skimage"}
    tree = ast.parse(Path(runner.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    third_party = names - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= allowed, third_party - allowed
    assert "medseg" not in names and "hydra" not in names and "lightning" not in names


def test_predict_package_config_errors(binary_package, tmp_path):
    from medseg.errors import ConfigError
    from medseg.pipelines.predict import predict

    with pytest.raises(ConfigError, match="input_dir"):
        predict(compose_cfg("predict", [f"package={binary_package}"], tmp_path / "a"), tmp_path / "a")
    with pytest.raises(ConfigError, match="not several"):
        predict(compose_cfg("predict", [f"package={binary_package}", f"run_dir={tmp_path}"], tmp_path / "b"),
                tmp_path / "b")
    with pytest.raises(ConfigError, match="run_dir: missing"):
        predict(compose_cfg("predict", [], tmp_path / "c"), tmp_path / "c")


def test_zipped_package_predicts_like_the_folder(run_factory, tmp_path):
    run = run_factory("binary", BINARY)
    pkg = export(run, tmp_path / "pkg", "zip=true")
    zipped = tmp_path / "pkg.zip"
    assert zipped.is_file()
    image = _png(tmp_path / "eye.png", (39, 47), seed=12, rgb=True)
    case = runner.read_input(image, 3)
    a = runner.Model(pkg).predict(case["image"])
    b = load_package(zipped).predict(case["image"])
    np.testing.assert_array_equal(a["probs"], b["probs"])
    bad = tmp_path / "bad.zip"
    bad.write_bytes(zipped.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match="bad.zip"):
        load_package(bad)
