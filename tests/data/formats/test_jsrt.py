"""JSRT reader: raw 12-bit big-endian images with SCR masks, the 128x128 PNG variant, and
images/masks sets whose masks come at another resolution."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.data.case import DataError
from medseg.data.formats.jsrt import JSRTReader, block_mean
from medseg.data.preprocess import resize_nearest
from medseg.data.synth.jsrt import make_chest, write_jsrt
from tests.conftest import SMOKE_LR, assert_beats_constant

SIZE = 64


@pytest.fixture(scope="module")
def scr(tmp_path_factory) -> Path:
    return write_jsrt(tmp_path_factory.mktemp("jsrt") / "JSRT", n=4, size=SIZE, layout="scr", seed=7)


def test_scr_round_trip(scr):
    reader = JSRTReader(scr)
    assert reader.layout == "scr" and reader.available_splits() == ["all", "fold1", "fold2"]
    assert reader.list_cases("fold1") == ["JPCLN001", "JPCLN003"] and len(reader.list_cases("all")) == 4
    raw = np.fromfile(scr / "All247images" / "JPCLN002.IMG", dtype=">u2")
    assert raw.size == SIZE * SIZE and raw.max() <= 4095  # 12-bit big-endian, no header
    s = make_chest(np.random.default_rng((7, 1)), SIZE)
    case = reader.load_case("JPCLN002")
    # masks are at half resolution (SCR); the image is block-averaged to them, display polarity
    expected = block_mean(1.0 - np.round((1.0 - s.image) * 4095) / 4095.0, 2)
    np.testing.assert_allclose(case.image[0], expected, atol=1e-6)
    half = (SIZE // 2, SIZE // 2)
    np.testing.assert_array_equal(case.mask, resize_nearest(s.right_lung | s.left_lung, half))
    sep = JSRTReader(scr, lungs="separate").load_case("JPCLN002")
    assert sep.mask.max() == 2
    np.testing.assert_array_equal(sep.mask == 1, resize_nearest(s.right_lung, half) > 0)
    # lungs are dark (air) in display polarity
    assert case.image[0][case.mask > 0].mean() < case.image[0][case.mask == 0].mean()


def test_png_variant_and_folder_variant(tmp_path):
    png = write_jsrt(tmp_path / "png", n=3, size=32, layout="png", seed=1)
    r = JSRTReader(png)
    assert r.layout == "png" and r.list_cases("all") == ["JPCLN001", "JPCLN002", "JPCLN003"]
    s = make_chest(np.random.default_rng((1, 0)), 32)
    case = r.load_case("JPCLN001")
    np.testing.assert_array_equal(case.image[0], (s.image * 255 + 0.5).astype(np.uint8) / np.float32(255))
    np.testing.assert_array_equal(case.mask, s.right_lung | s.left_lung)

    folder = write_jsrt(tmp_path / "folder", n=2, size=32, layout="folder", seed=1, mask_size=16)
    r = JSRTReader(folder)
    with pytest.warns(UserWarning, match=r"mask size \(16, 16\) differs .* nearest neighbour"):
        case = r.load_case("JPCLN001")
    assert case.mask.shape == (32, 32)
    np.testing.assert_array_equal(case.mask, resize_nearest(resize_nearest(s.right_lung | s.left_lung, (16, 16)), (32, 32)))


def test_bad_raw_files(scr, tmp_path):
    root = Path(shutil.copytree(scr, tmp_path / "JSRT"))
    img = root / "All247images" / "JPCLN001.IMG"
    img.write_bytes(img.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"JPCLN001\.IMG: 1000 bytes is not a square"):
        JSRTReader(root).load_case("JPCLN001")
    img2 = root / "All247images" / "JPCLN002.IMG"
    img2.write_bytes(np.full(SIZE * SIZE, 60000, ">u2").tobytes())
    with pytest.raises(DataError, match="exceed 12 bits"):
        JSRTReader(root).load_case("JPCLN002")
    with pytest.warns(UserWarning, match="exceed 12 bits"):
        JSRTReader(root, strict=False).load_case("JPCLN002")
    (root / "scratch" / "fold1" / "masks" / "left lung" / "JPCLN003.gif").write_bytes(b"GIF89a")
    with pytest.raises(DataError, match=r"left lung/JPCLN003\.gif: cannot read image"):
        JSRTReader(root).load_case("JPCLN003")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a JSRT layout"):
        JSRTReader(tmp_path / "empty")


def test_train_one_epoch_jsrt_synth(train_synth):
    import json

    results, run_dir = train_synth("jsrt", "data.synthesize.n=10", "data.synthesize.size=128",
                                   "data.patch_size=[64,64]", "data.preprocess.0.size=[64,64]",
                                   "data.samples_per_epoch=8", SMOKE_LR)
    splits = json.loads((run_dir / "splits.json").read_text())
    assert len(splits["test"]) == 3  # the 7:3 split of 10 images
    assert_beats_constant(results, 0.80)  # measured 0.881
