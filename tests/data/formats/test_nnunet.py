"""nnU-Net v2 raw datasets (3D NIfTI, 2D PNG, region labels, splits_final.json) and Decathlon tasks (4D NIfTI)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from medseg.data.formats.decathlon import DecathlonReader
from medseg.data.formats.nnunet import NnunetReader
from medseg.data.synth.decathlon import write_decathlon
from medseg.data.synth.folder import make_shapes
from medseg.data.synth.nnunet import write_nnunet
from medseg.errors import ConfigError, DataError


def _labels(i, size, seed=1):
    s = make_shapes(np.random.default_rng((seed, i)), size)
    seg = np.zeros(size, np.uint8)
    for k in range(3):
        seg[s.labels[k] > 0] = k + 1
    return s, seg


@pytest.fixture(scope="module")
def nn3d(tmp_path_factory):
    return write_nnunet(tmp_path_factory.mktemp("nn") / "Dataset901_Shapes", n=6, n_test=2, size=(16, 16, 16),
                        folds=3, seed=1)


def test_nnunet_3d_reads_channels_labels_and_test(nn3d):
    reader = NnunetReader(nn3d)
    assert (reader.task, reader.class_names, reader.in_channels, reader.spatial_dims) == \
        ("multiclass", ("round", "square", "diamond"), 2, 3)
    assert reader.channel_names == ["T2", "ADC"] and reader.available_splits() == ["training", "test"]
    assert not reader.has_labels("test") and reader.load_case("case_006").mask is None
    case = reader.load_case("case_001")
    s, seg = _labels(1, (16, 16, 16))
    np.testing.assert_allclose(case.image[0], s.image, atol=1e-6)
    np.testing.assert_array_equal(case.mask, seg)
    assert case.meta["affine"] is not None and case.spacing == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("ending", [".png", ".tif"])
def test_nnunet_2d_and_regions(tmp_path, ending):
    root = write_nnunet(tmp_path / "Dataset902_Shapes2D", n=4, n_test=0, size=(24, 28), file_ending=ending,
                        channels=1, folds=None, seed=1)
    reader = NnunetReader(root)
    assert reader.spatial_dims == 2 and reader.in_channels == 1 and reader.splits_file is None
    case = reader.load_case("case_002")
    s, seg = _labels(2, (24, 28))
    assert case.image.shape == (1, 24, 28) and abs(case.image.max() - s.image.max()) < 0.01
    np.testing.assert_array_equal(case.mask, seg)
    reg = write_nnunet(tmp_path / "Dataset903_Regions", n=3, n_test=0, size=(12, 12, 12), regions=True, folds=None, seed=1)
    r = NnunetReader(reg)
    assert r.task == "multilabel" and r.class_names == ("objects", "round_or_square", "round")
    case = r.load_case("case_000")
    _, seg = _labels(0, (12, 12, 12))
    np.testing.assert_array_equal(case.mask[0], seg > 0)
    np.testing.assert_array_equal(case.mask[1], np.isin(seg, (1, 2)))
    np.testing.assert_array_equal(r.labels.to_labels(case.mask), seg)  # regions_class_order [3, 2, 1]


def test_nnunet_bad_variants_name_the_file(nn3d, tmp_path):
    root = shutil.copytree(nn3d, tmp_path / "Dataset904_Bad")
    (root / "imagesTr" / "case_002_0001.nii.gz").unlink()
    with pytest.raises(DataError, match=r"imagesTr: case case_002 lacks channel file\(s\) \['case_002_0001.nii.gz'\]"):
        NnunetReader(root)
    spec = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**spec, "file_ending": ".nrrd"}))
    with pytest.raises(DataError, match=r"imagesTr: no training images <case>_0000\.nrrd.*saw \['case_000_0000"):
        NnunetReader(root)
    (root / "dataset.json").unlink()
    with pytest.raises(DataError, match=r"no dataset.json.*DatasetXXX_Name"):
        NnunetReader(root)
    root2 = shutil.copytree(nn3d, tmp_path / "Dataset905_Bad")
    from medseg.data.formats.nifti import write_nifti

    write_nifti(root2 / "labelsTr" / "case_001.nii.gz", np.full((16, 16, 16), 7, np.uint8), np.eye(4))
    with pytest.raises(DataError, match=r"labelsTr/case_001\.nii\.gz: label values \[7\] not in dataset.json"):
        NnunetReader(root2).load_case("case_001")


def test_splits_final_gives_the_folds(nn3d):
    from medseg.data.datamodule import SegmentationDataModule

    folds = json.loads((nn3d / "splits_final.json").read_text())
    dm = SegmentationDataModule(root=str(nn3d), reader=NnunetReader, patch_size=(16, 16, 16), fold=1, n_folds=3,
                                test_fraction=0.2)
    dm.setup()
    test = set(dm.splits["test"])
    assert test and not test & (set(dm.splits["train"]) | set(dm.splits["val"]))
    assert dm.splits["val"] == sorted(set(folds[1]["val"]) - test)
    assert dm.splits["train"] == sorted(set(folds[1]["train"]) - test)
    with pytest.raises(ConfigError, match=r"holds 3 folds but data.n_folds=5"):
        SegmentationDataModule(root=str(nn3d), reader=NnunetReader, fold=0, n_folds=5).setup()


def test_kfold_refuses_another_fold_count(nn3d, tmp_path):
    from medseg.pipelines.kfold import run_kfold
    from tests.conftest import compose_cfg

    cfg = compose_cfg("kfold", ["data=nnunet", f"data.root={nn3d}", "folds=2",
                                f"data.splits={nn3d / 'splits_final.json'}"], tmp_path / "k")
    with pytest.raises(ConfigError, match=r"splits_final.json holds 3 folds but folds=2: run medseg-kfold folds=3"):
        run_kfold(cfg, tmp_path / "k")


def test_decathlon_4d(tmp_path):
    root = write_decathlon(tmp_path / "Task90_Shapes", n=3, n_test=1, size=(12, 14, 10), seed=1)
    assert (root / "imagesTr" / "._shapes_001.nii.gz").is_file()  # the macOS junk is there, and ignored
    reader = DecathlonReader(root)
    assert reader.available_splits() == ["training", "test"] and reader.in_channels == 2
    case = reader.load_case("shapes_002")
    s, seg = _labels(1, (12, 14, 10), seed=1)
    assert case.image.shape == (2, 12, 14, 10) and case.spacing == (1.0, 1.0, 2.0)
    np.testing.assert_allclose(case.image[0], s.image, atol=1e-6)
    np.testing.assert_array_equal(case.mask, seg)
    (root / "labelsTr" / "shapes_003.nii.gz").unlink()
    with pytest.raises(DataError, match=r"labelsTr/shapes_003\.nii\.gz: label of case shapes_003 listed in dataset.json"):
        reader.load_case("shapes_003")
    (root / "imagesTr" / "shapes_001.nii.gz").unlink()
    with pytest.raises(DataError, match=r"imagesTr/shapes_001\.nii\.gz: listed in dataset.json but missing"):
        DecathlonReader(root)


@pytest.mark.parametrize("name, overrides", [
    ("nnunet", ["data.synthesize.size=[16,16,16]", "data.patch_size=[16,16,16]", "data.synthesize.folds=3"]),
    ("nnunet", ["data.synthesize.size=[32,32]", "data.synthesize.file_ending=.png", "data.patch_size=[32,32]",
                "data.synthesize.folds=null"]),
    ("decathlon", ["data.synthesize.size=[16,16,16]", "data.patch_size=[16,16,16]"]),
])
def test_smoke_epoch(train_synth, name, overrides):
    results, _ = train_synth(name, "data.synthesize.n=6", "data.samples_per_epoch=4", "model.depth=2",
                             "model.base_channels=4", "loss=ce", *overrides)
    assert np.isfinite(results["test/dice"])


def test_predict_in_nnunet_layout(train_cfg, tmp_path):
    """A trained model writes <case>.png label maps with the dataset's values at the source size."""
    from omegaconf import OmegaConf, open_dict

    from medseg.pipelines.predict import predict
    from medseg.pipelines.train import train
    from tests.conftest import compose_cfg

    cfg, run_dir = train_cfg(["data=nnunet_synth", "debug=smoke", f"paths.data_dir={tmp_path / 'data'}",
                              "data.synthesize.n=6", "data.synthesize.n_test=1", "data.synthesize.size=[40,40]",
                              "data.synthesize.file_ending=.png", "data.synthesize.folds=null",
                              "data.synthesize.regions=true", "data.patch_size=[16,16]", "data.max_size=20",
                              "data.samples_per_epoch=4", "model.depth=2", "model.base_channels=4"])
    train(cfg, run_dir)
    saved = cfg.copy()
    with open_dict(saved):
        saved.pop("hydra")
    (run_dir / ".hydra").mkdir(exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(saved, resolve=True))
    out = tmp_path / "pred"
    predict(compose_cfg("predict", [f"run_dir={run_dir}", "split=test", "writer=nnunet"], out), out)
    files = sorted((out / "nnunet").iterdir())
    split = json.loads((run_dir / "splits.json").read_text())["test"]
    assert [f.name for f in files] == [f"{c}.png" for c in split]
    labels = np.asarray(Image.open(files[0]))
    # the source size (the model ran at 20x20), and the dataset's label values from the regions
    assert labels.shape == (40, 40) and set(np.unique(labels)) <= {0, 1, 2, 3}


@pytest.mark.slow
def test_kfold_runs_the_folds_of_splits_final(tmp_path):
    """medseg-kfold on an nnU-Net dataset: fold k validates on splits_final.json's fold k (minus the test set)."""
    from medseg.pipelines.kfold import run_kfold
    from tests.conftest import compose_cfg

    root = write_nnunet(tmp_path / "Dataset906_CV", n=8, n_test=0, size=(24, 24), file_ending=".png", folds=2,
                        channels=1, seed=2)
    out = tmp_path / "cv"
    cfg = compose_cfg("kfold", ["data=nnunet", f"data.root={root}", "folds=2", "debug=smoke", "loss=ce",
                                "data.patch_size=[16,16]", "data.samples_per_epoch=4", "model.depth=2",
                                "model.base_channels=4", "metrics=[]"], out)
    folds = run_kfold(cfg, out)
    spec = json.loads((root / "splits_final.json").read_text())
    for k in range(2):
        s = json.loads((out / f"fold_{k}" / "splits.json").read_text())
        assert s["val"] == sorted(set(spec[k]["val"]) - set(s["test"]))
    assert len(folds) == 2
