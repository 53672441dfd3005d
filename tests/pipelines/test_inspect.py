"""medseg-inspect's report: what it saw per layout, failures, split preview and the overrides to use."""

from __future__ import annotations

import pytest

from medseg.pipelines.inspect import guess_mask_pattern, inspect_dataset
from tests.conftest import compose_cfg


def _cfg(tmp_path, *overrides):
    return compose_cfg("inspect", [f"paths.log_dir={tmp_path / 'logs'}", *overrides], tmp_path / "run")


def test_stare_style_names_guess_the_mask_pattern(tmp_path):
    from medseg.data.synth.folder import write_folder

    root = write_folder(tmp_path / "STARE", n=3, size=(20, 24), ext="ppm", image_dir="stare-images",
                        mask_dir="labels-ah", image_name="im{i:04d}", mask_name="{stem}.ah", mask_ext="pgm", start=1)
    with pytest.warns(UserWarning, match="3 images without masks"):
        report = inspect_dataset(_cfg(tmp_path, f"data.root={root}", "data.reader.image_dir=stare-images",
                                      "data.reader.mask_dir=labels-ah"))
    assert report["splits"]["all"]["cases"] == 3 and len(report["failures"]) == 3
    assert "data.reader.mask_pattern='{stem}.ah.pgm'   # guessed from the unmatched names" in report["suggestions"]
    assert report["in_channels"] == 3 and any(s.startswith("data.fov=auto") for s in report["suggestions"])
    # with the suggested option the same folder reads cleanly
    report = inspect_dataset(_cfg(tmp_path, f"data.root={root}", "data.reader.image_dir=stare-images",
                                  "data.reader.mask_dir=labels-ah", "data.reader.mask_pattern='{stem}.ah.pgm'"))
    assert not report["failures"] and report["splits"]["all"]["label_values"] == [0, 1]
    assert report["would_split"] == {"train": 1, "val": 1, "test": 1}


def test_nnunet_report_lists_channels_spacing_and_multiclass_loss(tmp_path):
    from medseg.data.synth.nnunet import write_nnunet

    root = write_nnunet(tmp_path / "Dataset901_Shapes", n=4, n_test=1, size=(12, 12, 12), folds=2, seed=1)
    report = inspect_dataset(_cfg(tmp_path, "data=nnunet", f"data.root={root}", "data.patch_size=[64,64]"))
    assert report["channel_names"] == ["T2", "ADC"] and report["splits"]["training"]["label_values"] == [0, 1, 2, 3]
    assert report["splits_file"].endswith("splits_final.json") and report["spacing"]["median"] == [1.0, 1.0, 1.0]
    assert "data.patch_size=[64,64,64]   # a 3D dataset" in report["suggestions"]
    assert any(s.startswith("loss=ce") for s in report["suggestions"])


def test_train_split_and_split_errors_are_suggested(tmp_path):
    from medseg.data.synth.folder import write_folder

    write_folder(tmp_path / "d" / "train", n=2, size=(16, 16), seed=1)
    report = inspect_dataset(_cfg(tmp_path, f"data.root={tmp_path / 'd'}", "data.patch_size=[8,8]"))
    assert "data.train_split=train   # 'all' is not a split here" in report["suggestions"]
    assert "no 'all' split" in report["split_error"]


def test_guess_mask_pattern():
    assert guess_mask_pattern(["a/CHNCXR_0001_0.png", "a/CHNCXR_0002_0.png"],
                              ["m/CHNCXR_0001_0_mask.png", "m/CHNCXR_0002_0_mask.png"]) == "{stem}_mask.png"
    assert guess_mask_pattern(["x.png"], ["y.png"]) is None
    assert guess_mask_pattern(["im1.ppm"], ["im1.ah.pgm"]) == "{stem}.ah.pgm"
