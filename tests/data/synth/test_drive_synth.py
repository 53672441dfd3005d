"""The synthetic DRIVE generator writes the real layout, formats and value ranges, and its images
are not solvable by a global threshold."""

from __future__ import annotations

import numpy as np
from PIL import Image

from medseg.data.synth.drive import write_drive
from medseg.data.synth.fundus import make_fundus
from medseg.metrics.baselines import best_global_threshold


def test_layout_and_formats(tiny_drive):
    root = tiny_drive
    train_imgs = sorted(p.name for p in (root / "training" / "images").iterdir())
    assert train_imgs == [f"{i}_training.tif" for i in range(21, 27)]
    assert sorted(p.name for p in (root / "test" / "images").iterdir()) == ["01_test.tif", "02_test.tif"]
    for split, num in (("training", "21"), ("test", "01")):
        img = Image.open(root / split / "images" / f"{num}_{split}.tif")
        assert img.format == "TIFF" and img.mode == "RGB" and img.size == (64, 64)
        assert img.info.get("compression") == "tiff_lzw"
        for rel in (f"1st_manual/{num}_manual1.gif", f"mask/{num}_{split}_mask.gif"):
            gif = Image.open(root / split / rel)
            assert gif.format == "GIF" and gif.size == (64, 64)
            assert set(np.unique(np.asarray(gif.convert("L"))).tolist()) <= {0, 255}
    assert (root / "test" / "2nd_manual" / "01_manual2.gif").is_file()
    assert not (root / "training" / "2nd_manual").exists()


def test_full_size_sample_is_fundus_like():
    s = make_fundus(np.random.default_rng(0))
    assert s.image.shape == (584, 565, 3) and s.image.dtype == np.uint8
    # circular field of view, black outside, vessels only inside it
    assert s.fov[292, 282] == 1 and s.fov[0, 0] == 0 and s.image[0, 0].max() == 0
    assert not (s.vessels & ~s.fov).any()
    frac = s.vessels[s.fov > 0].mean()
    assert 0.04 < frac < 0.2, frac
    # red dominates green dominates blue inside the FOV, like a fundus photograph
    inside = s.image[s.fov > 0].mean(0)
    assert inside[0] > inside[1] > inside[2]


def test_not_solvable_by_a_global_threshold(tmp_path):
    from medseg.data.formats.drive import DriveReader

    root = write_drive(tmp_path / "D", n_train=1, n_test=3, height=292, width=282, seed=5)
    reader = DriveReader(root)
    cases = [reader.load_case(c) for c in reader.list_cases("test")]
    best = best_global_threshold(cases, channel=1)
    assert best["dice"] < 0.45, best  # a trained U-Net reaches ~0.8 on the default data


def test_generator_is_deterministic(tmp_path):
    a = write_drive(tmp_path / "a", n_train=1, n_test=1, height=48, width=48, seed=7)
    b = write_drive(tmp_path / "b", n_train=1, n_test=1, height=48, width=48, seed=7)
    for rel in ("training/images/21_training.tif", "test/1st_manual/01_manual1.gif"):
        assert np.array_equal(np.asarray(Image.open(a / rel)), np.asarray(Image.open(b / rel)))
