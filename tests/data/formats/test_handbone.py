"""Hand-bone reader: round trip with the generator, 29-channel overlapping masks, grouped folds, bad JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.data.case import DataError
from medseg.data.formats.handbone import CLASSES, HandBoneReader, rasterize
from medseg.data.splits import grouped_kfold, make_splits
from medseg.data.synth.handbone import make_hand, write_handbone

SIZE = 96


@pytest.fixture(scope="module")
def tiny_hand(tmp_path_factory) -> Path:
    return write_handbone(tmp_path_factory.mktemp("hb") / "handbone", n_train=4, n_test=1, size=SIZE, seed=3)


def test_layout_and_round_trip(tiny_hand):
    reader = HandBoneReader(tiny_hand)
    assert reader.available_splits() == ["train", "test"]
    assert reader.has_labels("train") and not reader.has_labels("test")
    ids = reader.list_cases("train")
    assert len(ids) == 8 and len({reader.group_of(c) for c in ids}) == 4
    for k, cid in enumerate(ids[:2]):  # ID001 left then right hand
        sample = make_hand(np.random.default_rng((3, k)), SIZE, "LR"[k])
        case = reader.load_case(cid)
        assert case.image.shape == (1, SIZE, SIZE) and case.mask.shape == (29, SIZE, SIZE)
        np.testing.assert_array_equal(case.image[0], sample.image / np.float32(255))
        np.testing.assert_array_equal(case.mask, rasterize(sample.polygons, (SIZE, SIZE)))
        assert case.group == "ID001"
    test_case = reader.load_case(reader.list_cases("test")[0])
    assert test_case.mask is None


def test_all_classes_present_and_overlapping(tiny_hand):
    reader = HandBoneReader(tiny_hand)
    case = reader.load_case(reader.list_cases("train")[0])
    assert case.mask.reshape(29, -1).any(1).all()
    assert (case.mask.sum(0) > 1).any()  # classes overlap at joints: multi-label, not multi-class
    assert reader.task == "multilabel" and reader.class_names == CLASSES and len(CLASSES) == 29
    assert CLASSES[19] == "Trapezium" and CLASSES[-2:] == ("Radius", "Ulna")


def test_bones_brighter_than_soft_tissue(tiny_hand):
    reader = HandBoneReader(tiny_hand)
    case = reader.load_case(reader.list_cases("train")[1])
    bone = case.mask.any(0)
    from scipy import ndimage

    tissue = ndimage.binary_dilation(bone, iterations=3) & ~bone
    assert case.image[0][bone].mean() > case.image[0][tissue].mean() + 0.1


def test_kfold_keeps_both_hands_together(tiny_hand):
    reader = HandBoneReader(tiny_hand)
    ids = reader.list_cases("train")
    folds = grouped_kfold(ids, 2, seed=0, group_of=reader.group_of)
    for fold in folds:
        groups = {reader.group_of(c) for c in fold}
        assert sorted(fold) == sorted(c for c in ids if reader.group_of(c) in groups)
    splits = make_splits(ids, None, val_fraction=0.25, test_fraction=0.25, seed=1, fold=1, n_folds=2,
                         group_of=reader.group_of)
    sides = [{reader.group_of(c) for c in splits[s]} for s in ("train", "val", "test")]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])


def _edit_json(root: Path, fn) -> Path:
    path = min((root / "train" / "outputs_json").glob("*/*.json"))
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["annotations"][0].update(points=[[1, 1], [5, 5]]), "needs at least 3"),
    (lambda d: d["annotations"][3].update(points=[[1, 1], [5, 5], [SIZE + 40, 7]]), "outside the 96x96 image"),
    (lambda d: d["annotations"][5].update(label="finger-20"), "'finger-20', not one of the 29"),
])
def test_bad_polygons(tiny_hand, tmp_path, edit, message):
    root = Path(shutil.copytree(tiny_hand, tmp_path / "hb"))
    path = _edit_json(root, edit)
    reader = HandBoneReader(root)
    cid = reader.list_cases("train")[0]
    with pytest.raises(DataError, match=message) as err:
        reader.load_case(cid)
    assert str(path) in str(err.value)
    with pytest.warns(UserWarning, match=message):
        case = HandBoneReader(root, strict=False).load_case(cid)
    assert case.mask.shape == (29, SIZE, SIZE)


def test_corrupt_files(tiny_hand, tmp_path):
    root = Path(shutil.copytree(tiny_hand, tmp_path / "hb"))
    reader = HandBoneReader(root)
    ids = reader.list_cases("train")
    reader.json_path(ids[0]).write_text('{"annotations": [')
    with pytest.raises(DataError, match="not a valid annotation file"):
        reader.load_case(ids[0])
    reader.json_path(ids[1]).unlink()
    with pytest.raises(DataError, match="annotation file not found"):
        reader.load_case(ids[1])
    png = sorted((root / "train" / "DCM").glob("*/*.png"))[2]
    png.write_bytes(png.read_bytes()[:60])
    with pytest.raises(DataError, match=f"{png.name}: cannot read image"):
        reader.load_case(ids[2])
    lenient = HandBoneReader(root, strict=False)
    with pytest.warns(UserWarning):
        assert len(lenient.load_cases(ids)) == len(ids) - 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no hand radiographs"):
        HandBoneReader(tmp_path / "empty")


def test_train_one_epoch_handbone_synth(train_synth):
    _, run_dir = train_synth("handbone", "data.synthesize.size=64", "data.synthesize.n_train=4",
                             "data.synthesize.n_test=1", "data.patch_size=[32,32]", "data.samples_per_epoch=8",
                             "data.fold=0", "data.n_folds=2")
    splits = json.loads((run_dir / "splits.json").read_text())
    groups = {s: {c.split("_")[0] for c in ids} for s, ids in splits.items()}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    assert (run_dir / "per_class.csv").exists()


def test_16bit_and_rgb_radiographs_read_to_same_scale(tiny_hand, tmp_path):
    root = Path(shutil.copytree(tiny_hand, tmp_path / "hb"))
    reader = HandBoneReader(root)
    ids = reader.list_cases("train")
    ref = [reader.load_case(c).image for c in ids[:2]]
    pngs = sorted((root / "train" / "DCM").glob("*/*.png"))[:2]
    from PIL import Image

    a8 = np.asarray(Image.open(pngs[0]))
    Image.fromarray(a8.astype(np.uint16) * 257).save(pngs[0])  # 16-bit, same gray levels
    a8b = np.asarray(Image.open(pngs[1]))
    Image.fromarray(np.stack([a8b] * 3, -1)).save(pngs[1])  # RGB
    np.testing.assert_allclose(reader.load_case(ids[0]).image, ref[0], atol=1e-6)
    np.testing.assert_allclose(reader.load_case(ids[1]).image, ref[1], atol=1e-6)
