"""The five inputs that used to be accepted silently now fail (or warn) naming the file or key."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medseg.errors import ConfigError, DataError


def test_drive_missing_fov_warns_by_name_and_notes_it(tmp_path):
    from medseg.data.formats.drive import DriveReader
    from medseg.data.synth.drive import write_drive

    root = write_drive(tmp_path / "DRIVE", n_train=2, n_test=1, height=32, width=32, seed=0)
    fov = root / "training" / "mask" / "21_training_mask.gif"
    fov.unlink()
    with pytest.warns(UserWarning, match="21_training_mask.gif"):
        case = DriveReader(root).load_case("21_training")
    assert "21_training_mask.gif" in case.meta["data_note"] and case.roi is not None


def test_drive_missing_test_label_is_an_error(tmp_path):
    from medseg.data.formats.drive import DriveReader
    from medseg.data.synth.drive import write_drive

    root = write_drive(tmp_path / "DRIVE", n_train=2, n_test=2, height=32, width=32, seed=0)
    (root / "test" / "1st_manual" / "01_manual1.gif").unlink()
    with pytest.raises(DataError, match="01_manual1.gif"):
        DriveReader(root).load_case("01_test")


@pytest.mark.parametrize("lung", ["left lung", "right lung"])
def test_jsrt_either_lung_mask_missing_is_an_error(tmp_path, lung):
    from medseg.data.formats.jsrt import JSRTReader
    from medseg.data.synth.jsrt import write_jsrt

    root = write_jsrt(tmp_path / "JSRT", n=4, size=32, layout="scr", seed=0)
    (root / "scratch" / "fold1" / "masks" / lung / "JPCLN001.gif").unlink()
    reader = JSRTReader(root)
    assert "JPCLN001" in reader.list_cases("all")  # still listed: not silently dropped
    with pytest.raises(DataError, match=f"{lung}/JPCLN001.gif"):
        reader.load_case("JPCLN001")


def test_handbone_annotation_without_image_is_an_error(tmp_path):
    from medseg.data.formats.handbone import HandBoneReader
    from medseg.data.synth.handbone import write_handbone

    root = write_handbone(tmp_path / "hb", n_train=2, n_test=1, size=32, seed=0)
    img = sorted((root / "train" / "DCM").glob("*/*.png"))[0]
    img.unlink()
    with pytest.raises(DataError, match=f"{img.stem}.json: annotation without its image"):
        HandBoneReader(root)


def test_colour_mask_in_a_binary_folder_is_an_error_grey_rgb_is_fine(tmp_path):
    from medseg.data.formats.folder import FolderReader
    from medseg.data.synth.folder import write_folder

    root = write_folder(tmp_path / "f", n=3, size=(24, 24), task="binary", ext="png", seed=0)
    grey = np.asarray(Image.open(root / "masks" / "case_000.png").convert("L"))
    Image.fromarray(np.stack([grey] * 3, -1)).save(root / "masks" / "case_000.png")  # grey saved as RGB
    rgb = np.zeros((24, 24, 3), np.uint8)
    rgb[5:15, 5:15] = (0, 255, 0)
    Image.fromarray(rgb).save(root / "masks" / "case_001.png")
    reader = FolderReader(root, classes=["fg"], task="binary")
    assert reader.load_case("case_000").mask.sum() == (grey > 0).sum()
    with pytest.raises(DataError, match="case_001.png: an RGB mask whose channels differ"):
        reader.load_case("case_001")


def test_patch_size_larger_than_the_images_is_a_config_error(train_cfg, tiny_drive):
    from medseg.pipelines.build import build_datamodule

    cfg, _ = train_cfg(["debug=smoke", "data=drive", f"data.root={tiny_drive}", "data.patch_size=[128,128]"])
    with pytest.raises(ConfigError, match=r"data.patch_size=\[128, 128\] is larger than the training images"):
        build_datamodule(cfg)
