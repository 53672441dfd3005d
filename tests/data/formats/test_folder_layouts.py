"""The folder reader on real folder shapes: several (images, masks) pairs, name patterns, split files,
STARE / Shenzhen layouts with their exact names, every file type through one smoke epoch each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medseg.data.formats.folder import FolderReader
from medseg.data.synth.folder import make_shapes, write_folder
from medseg.errors import ConfigError, DataError

PAIRS = ("data.reader.pairs=[{images:train_png,masks:train_masks_png,split:train},"
         "{images:val_png,masks:val_masks_png,split:val}]")


def _shenzhen(root, n_train=6, n_val=2, size=(48, 48), mask_size=(32, 32)):
    """Shenzhen/Montgomery-style: train_png/CHNCXR_0001_0.png + train_masks_png/CHNCXR_0001_0_mask.png
    (masks at another resolution), val_png/ + val_masks_png/, and one mask without an image."""
    for split, n, start in (("train", n_train, 1), ("val", n_val, 1 + n_train)):
        write_folder(root, n=n, size=size, mask_size=mask_size, seed=5, image_dir=f"{split}_png",
                     mask_dir=f"{split}_masks_png", image_name="CHNCXR_{i:04d}_0", mask_name="{stem}_mask", start=start)
    Image.fromarray(np.zeros(mask_size, np.uint8)).save(root / "train_masks_png" / "CHNCXR_0999_1_mask.png")
    return root


def _stare(root, n=6, size=(52, 56)):
    """STARE-style: stare-images/im0001.ppm + labels-ah/im0001.ah.pgm, and a split file that names
    images with their extension and uses 'validation'."""
    from medseg.data.synth.fundus import make_fundus

    (root / "stare-images").mkdir(parents=True)
    (root / "labels-ah").mkdir()
    names = []
    for i in range(1, n + 1):
        s = make_fundus(np.random.default_rng((7, i)), height=size[0], width=size[1])
        Image.fromarray(s.image).save(root / "stare-images" / f"im{i:04d}.ppm")
        Image.fromarray(s.vessels * np.uint8(255)).save(root / "labels-ah" / f"im{i:04d}.ah.pgm")
        names.append(f"im{i:04d}.ppm")
    split_file = root / "stare_split.json"
    split_file.write_text(json.dumps({"train": names[:3], "validation": names[3:5], "test": names[5:]}))
    return root, split_file


def test_shenzhen_layout_loads_with_options_only(tmp_path):
    root = _shenzhen(tmp_path / "Shenzhen")
    pairs = [{"images": "train_png", "masks": "train_masks_png", "split": "train"},
             {"images": "val_png", "masks": "val_masks_png", "split": "val"}]
    with pytest.warns(UserWarning, match=r"1 masks without images: CHNCXR_0999_1_mask\.png"):
        reader = FolderReader(root, pairs=pairs, mask_pattern="{stem}_mask.png", allow_resize=True)
    assert reader.available_splits() == ["train", "val"]
    assert reader.list_cases("val") == ["CHNCXR_0007_0", "CHNCXR_0008_0"]
    with pytest.warns(UserWarning, match="resized with nearest"):
        case = reader.load_case("CHNCXR_0002_0")
    assert case.mask.shape == (48, 48) and case.mask.any()
    with pytest.raises(DataError, match=r"CHNCXR_0999_1_mask\.png"):
        FolderReader(root, pairs=pairs, mask_pattern="{stem}_mask.png", unmatched="error")
    with pytest.raises(ConfigError, match=r"must contain \{stem\}"):
        FolderReader(root, pairs=pairs, mask_pattern="mask.png")


def test_shenzhen_trains_with_val_folder_and_max_size(train_cfg, tmp_path):
    from medseg.pipelines.train import train

    root = _shenzhen(tmp_path / "Shenzhen")
    base = ["data=folder", f"data.root={root}", PAIRS, "data.reader.mask_pattern='{stem}_mask.png'",
            "data.reader.allow_resize=true", "debug=smoke", "data.samples_per_epoch=8", "data.max_size=32"]
    # the default train_split=all is not here: the message names the option and the splits
    from hydra.utils import instantiate

    cfg, _ = train_cfg(base, run_dir=tmp_path / "r0")
    dm = instantiate(cfg.data, _convert_="partial")
    with pytest.raises(DataError, match=r"no 'all' split found \(found \['train', 'val'\]\); set data.train_split"):
        dm.setup()
    cfg, run_dir = train_cfg(base + ["data.train_split=train"])
    results = train(cfg, run_dir)
    splits = json.loads((run_dir / "splits.json").read_text())
    assert splits["val"] == ["CHNCXR_0007_0", "CHNCXR_0008_0"]  # the val_png folder, not a hold-out
    assert len(splits["train"]) + len(splits["test"]) == 6 and np.isfinite(results["test/dice"])


def test_stare_layout_loads_with_options_only(train_cfg, tmp_path):
    from hydra.utils import instantiate

    from medseg.pipelines.train import train

    root, split_file = _stare(tmp_path / "STARE")
    cfg, run_dir = train_cfg(["data=folder", f"data.root={root}", "data.reader.image_dir=stare-images",
                              "data.reader.mask_dir=labels-ah", "data.reader.mask_pattern='{stem}.ah.pgm'",
                              f"data.splits={split_file}", "data.fov=auto", "data.baseline=global_threshold",
                              "debug=smoke", "data.samples_per_epoch=8"])
    dm = instantiate(cfg.data, _convert_="partial")
    dm.setup()
    assert dm.splits == {"train": ["im0001", "im0002", "im0003"], "val": ["im0004", "im0005"], "test": ["im0006"]}
    case = dm.cases["test"][0]
    # fov=auto: the field of view is derived (the dark corners of the photo are outside it)
    assert case.roi is not None and 0.5 < case.roi.mean() < 0.95 and not case.roi[0, 0]
    train(cfg, run_dir)
    assert "green channel" in (run_dir / "report.md").read_text()  # the baseline is reported


def test_regex_matching_and_bad_masks(tmp_path):
    root = write_folder(tmp_path / "d", n=3, size=(24, 24), seed=2, image_name="{i:02d}_training",
                        mask_name="{stem}")
    for p in (root / "masks").iterdir():  # DRIVE-like: 21_training.png <-> 21_manual1.png
        p.rename(p.with_name(p.name.replace("_training", "_manual1")))
    reader = FolderReader(root, image_regex=r"(?P<stem>\d+)_training\.png", mask_regex=r"(?P<stem>\d+)_manual1\.png")
    assert reader.list_cases("all") == ["00", "01", "02"] and reader.load_case("01").mask.any()
    with pytest.raises(ConfigError, match=r"needs a named group \(\?P<stem>"):
        FolderReader(root, image_regex=r"\d+_training\.png")
    # an RGB mask whose channels differ is a colour-coded mask, not a label map
    rgb = np.zeros((24, 24, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(root / "masks" / "02_manual1.png")
    with pytest.raises(DataError, match=r"02_manual1\.png: an RGB mask whose channels differ"):
        reader.load_case("02")


def test_found_nothing_names_what_it_saw(tmp_path):
    (tmp_path / "x" / "images").mkdir(parents=True)
    for i in range(3):
        (tmp_path / "x" / "images" / f"scan{i}.xyz").write_bytes(b"?")
    with pytest.raises(DataError, match=r"no images found \(3 files skipped as not images \(\.xyz\).*image_dir"):
        FolderReader(tmp_path / "x")
    (tmp_path / "y" / "pictures").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no folder named 'images'.*\['pictures'\].*data.reader.image_dir"):
        FolderReader(tmp_path / "y")
    from medseg.data.formats.drive import DriveReader

    with pytest.raises(DataError, match=r"no DRIVE split found .*found \['pictures/'\]\); point data.root"):
        DriveReader(tmp_path / "y")


def test_split_file_shapes(tiny_drive, tmp_path):
    """``<split>.txt`` folders, CSV, ``validation`` alias, names with folders and extensions."""
    from medseg.data.datamodule import SegmentationDataModule
    from medseg.data.formats.drive import DriveReader
    from medseg.data.splits import load_split_spec

    d = tmp_path / "lists"
    d.mkdir()
    (d / "train.txt").write_text("training/images/21_training.tif\n22_training\n")
    (d / "validation.txt").write_text("23_training.tif\n")
    (d / "test.txt").write_text("01_test\n")
    dm = SegmentationDataModule(root=str(tiny_drive), reader=DriveReader, splits=str(d))
    dm.setup()
    assert dm.splits == {"train": ["21_training", "22_training"], "val": ["23_training"], "test": ["01_test"]}
    csv = tmp_path / "s.csv"
    csv.write_text("filename,split\n21_training.tif,training\n23_training.tif,valid\n01_test.tif,test\n")
    assert load_split_spec(str(csv))[0] == {"train": ["21_training.tif"], "val": ["23_training.tif"],
                                             "test": ["01_test.tif"]}
    with pytest.raises(DataError, match="unknown split name 'holdout'"):
        load_split_spec({"train": ["a"], "holdout": ["b"]})


def test_too_few_cases_points_to_data_splits(tmp_path):
    from medseg.data.datamodule import SegmentationDataModule

    root = write_folder(tmp_path / "two", n=2, size=(16, 16), seed=1)
    dm = SegmentationDataModule(root=str(root), reader=FolderReader, train_split="all")
    with pytest.raises(DataError, match=r"cannot split the 2 case\(s\) of split 'all'.*data.splits="):
        dm.setup()


@pytest.mark.parametrize("ext, size, patch", [("ppm", [32, 32], [32, 32]), ("pgm", [32, 32], [32, 32]),
                                              ("mha", [16, 16, 16], [16, 16, 16]),
                                              pytest.param("nrrd", [16, 16, 16], [16, 16, 16],
                                                           marks=pytest.mark.slow)])
def test_smoke_epoch_per_file_type(train_synth, ext, size, patch):
    results, run_dir = train_synth("folder", f"data.synthesize.ext={ext}", f"data.synthesize.size={size}",
                                   "data.synthesize.n=8", f"data.patch_size={patch}", "data.samples_per_epoch=8")
    assert np.isfinite(results["test/dice"]) and (run_dir / "per_image.csv").is_file()


@pytest.mark.parametrize("kind, size, patch", [("series", [16, 16, 16], [16, 16, 16]), ("xray", [32, 32], [32, 32])])
def test_smoke_epoch_dicom(train_synth, tmp_path, kind, size, patch):
    results, _ = train_synth("dicom", f"data.synthesize.kind={kind}", f"data.synthesize.size={size}",
                             f"data.patch_size={patch}", "data.samples_per_epoch=8", "data.synthesize.n=6")
    assert np.isfinite(results["test/dice"])
    marker = json.loads((tmp_path / "data" / "synthetic" / "dicom" / ".medseg_synthetic.json").read_text())
    assert marker["kind"] == kind


def test_shapes_helper_is_deterministic():
    a = make_shapes(np.random.default_rng((1, 2)), (16, 16))
    b = make_shapes(np.random.default_rng((1, 2)), (16, 16))
    np.testing.assert_array_equal(a.labels, b.labels)
