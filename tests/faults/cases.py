"""The generator of bad inputs: each case is one corruption of a valid tiny dataset (or one bad setting),
with the verdict a user should get from ``medseg-train``.

``expect`` is the exit status (2 config, 3 data, 4 checkpoint; see ``medseg/errors.py``) or ``"warn"``:
the run completes, a warning names the file, and the report records the fallback. ``names`` must appear
in the message (the file or key at fault).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

CONFIG, DATA, CHECKPOINT = 2, 3, 4


@dataclass
class BadCase:
    id: str
    fmt: str                                   # key of the ``datasets`` fixture
    mutate: Callable[[Path], None] | None       # corrupts the dataset copy in place
    expect: int | str                          # exit status, or "warn"
    names: str                                 # what the message must name (file name, key)
    overrides: list[str] = field(default_factory=list)  # extra command-line overrides ({root}, {tmp} filled in)


# ------------------------------------------------------------------ corruptions
def truncate(rel: str, keep: float = 0.5):
    def f(root: Path) -> None:
        p = root / rel
        data = p.read_bytes()
        p.write_bytes(data[: max(1, int(len(data) * keep))])
    return f


def garbage(rel: str):
    def f(root: Path) -> None:
        (root / rel).write_bytes(b"this is not an image, just text\n" * 8)
    return f


def empty(rel: str):
    def f(root: Path) -> None:
        (root / rel).write_bytes(b"")
    return f


def delete(rel: str):
    def f(root: Path) -> None:
        (root / rel).unlink()
    return f


def resize_image(rel: str, size=(20, 20), mode: str | None = None):
    def f(root: Path) -> None:
        p = root / rel
        with Image.open(p) as im:
            im = im.convert(mode) if mode else im
            im.resize(size, Image.NEAREST).save(p)
    return f


def gray_values(rel: str, values=(0, 77, 255)):
    """Overwrite a binary mask with non-binary grey levels."""
    def f(root: Path) -> None:
        p = root / rel
        with Image.open(p) as im:
            arr = np.asarray(im.convert("L")).copy()
        arr[: arr.shape[0] // 2, : arr.shape[1] // 2] = values[1]
        Image.fromarray(arr).save(p)
    return f


def colour_mask(rel: str):
    """A green-on-black RGB mask (red channel all zero): the case the reader used to read as empty."""
    def f(root: Path) -> None:
        p = root / rel
        with Image.open(p) as im:
            fg = np.asarray(im.convert("L")) > 0
        rgb = np.zeros(fg.shape + (3,), np.uint8)
        rgb[fg] = (0, 255, 0)
        rgb[:4, :4] = (0, 255, 0)  # at least some foreground
        Image.fromarray(rgb).save(p)
    return f


def edit_json(rel: str, change: Callable[[dict], None]):
    def f(root: Path) -> None:
        p = root / rel
        doc = json.loads(p.read_text())
        change(doc)
        p.write_text(json.dumps(doc))
    return f


def raw_text(rel: str, text: str):
    def f(root: Path) -> None:
        (root / rel).write_text(text)
    return f


def empty_folder(rel: str):
    def f(root: Path) -> None:
        for p in (root / rel).iterdir():
            p.unlink()
    return f


def big_values_img(rel: str):
    def f(root: Path) -> None:
        p = root / rel
        raw = np.fromfile(p, dtype=">u2")
        raw[:100] = 65000
        raw.astype(">u2").tofile(p)
    return f


def add_file(rel: str, like: str):
    def f(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((root / like).read_bytes())
    return f


def both(*fs):
    def f(root: Path) -> None:
        for g in fs:
            g(root)
    return f


HB_TRAIN = "train/outputs_json/ID001/image1661130828001_L.json"
HB_IMAGE = "train/DCM/ID001/image1661130828001_L.png"
SCR = "scratch/fold1/masks"
SCR2 = "scratch/fold2/masks"
BRATS = "MICCAI_BraTS2020_TrainingData/BraTS20_Training_001"


def _first_annotation(doc: dict, **kv) -> None:
    doc["annotations"][0].update(kv)


CASES: list[BadCase] = [
    # ---------------------------------------------------------------- DRIVE
    BadCase("drive/image-truncated", "drive", truncate("training/images/21_training.tif", 0.3), DATA, "21_training.tif"),
    BadCase("drive/image-not-an-image", "drive", garbage("training/images/22_training.tif"), DATA, "22_training.tif"),
    BadCase("drive/image-empty-file", "drive", empty("training/images/23_training.tif"), DATA, "23_training.tif"),
    BadCase("drive/label-missing", "drive", delete("training/1st_manual/21_manual1.gif"), DATA, "21_manual1.gif"),
    BadCase("drive/label-wrong-size", "drive", resize_image("training/1st_manual/22_manual1.gif"), DATA,
            "22_manual1.gif"),
    BadCase("drive/label-not-binary", "drive", gray_values("training/1st_manual/23_manual1.gif"), DATA,
            "23_manual1.gif"),
    BadCase("drive/fov-missing", "drive", delete("training/mask/24_training_mask.gif"), "warn", "24_training_mask.gif"),
    BadCase("drive/fov-wrong-size", "drive", resize_image("training/mask/21_training_mask.gif"), DATA,
            "21_training_mask.gif"),
    BadCase("drive/test-label-missing", "drive", delete("test/1st_manual/01_manual1.gif"), DATA, "01_manual1.gif"),
    BadCase("drive/no-training-images", "drive", empty_folder("training/images"), DATA, "DRIVE"),
    BadCase("drive/root-missing", "drive", None, DATA, "no_such_folder", ["data.root={tmp}/no_such_folder"]),
    BadCase("drive/root-empty", "drive", None, DATA, "empty_root", ["data.root={tmp}/empty_root"]),
    # ---------------------------------------------------------------- CHASE_DB1
    BadCase("chase/label-missing", "chase", delete("Image_01L_1stHO.png"), DATA, "Image_01L_1stHO.png"),
    BadCase("chase/image-truncated", "chase", truncate("Image_02R.jpg", 0.3), DATA, "Image_02R.jpg"),
    BadCase("chase/label-wrong-size", "chase", resize_image("Image_03L_1stHO.png"), DATA, "Image_03L_1stHO.png"),
    BadCase("chase/label-not-binary", "chase", gray_values("Image_01R_1stHO.png"), DATA, "Image_01R_1stHO.png"),
    # ---------------------------------------------------------------- JSRT (SCR originals and the PNG variant)
    BadCase("jsrt/left-lung-mask-missing", "jsrt", delete(f"{SCR}/left lung/JPCLN001.gif"), DATA, "JPCLN001.gif"),
    BadCase("jsrt/right-lung-mask-missing", "jsrt", delete(f"{SCR2}/right lung/JPCLN002.gif"), DATA, "JPCLN002.gif"),
    BadCase("jsrt/img-truncated", "jsrt", truncate("All247images/JPCLN003.IMG", 0.7), DATA, "JPCLN003.IMG"),
    BadCase("jsrt/img-over-12-bits", "jsrt", big_values_img("All247images/JPCLN004.IMG"), DATA, "JPCLN004.IMG"),
    BadCase("jsrt/mask-without-image", "jsrt", delete("All247images/JPCLN005.IMG"), DATA, "JPCLN005"),
    BadCase("jsrt/lung-mask-not-binary", "jsrt", gray_values(f"{SCR2}/right lung/JPCLN006.gif"), DATA, "JPCLN006.gif"),
    BadCase("jsrt_png/label-missing", "jsrt_png", delete("label/JPCLN003.png"), DATA, "JPCLN003"),
    # ---------------------------------------------------------------- hand bones (PNG + polygon JSON)
    BadCase("handbone/json-missing", "handbone", delete(HB_TRAIN), DATA, "image1661130828001_L.json"),
    BadCase("handbone/image-missing", "handbone", delete(HB_IMAGE), DATA, "image1661130828001_L"),
    BadCase("handbone/json-syntax", "handbone", raw_text(HB_TRAIN, "{not json"), DATA, "image1661130828001_L.json"),
    BadCase("handbone/json-no-annotations", "handbone", raw_text(HB_TRAIN, '{"other": []}'), DATA,
            "image1661130828001_L.json"),
    BadCase("handbone/unknown-label", "handbone", edit_json(HB_TRAIN, lambda d: _first_annotation(d, label="finger-99")),
            DATA, "image1661130828001_L.json"),
    BadCase("handbone/polygon-two-points", "handbone",
            edit_json(HB_TRAIN, lambda d: _first_annotation(d, points=[[1, 1], [2, 2]])), DATA,
            "image1661130828001_L.json"),
    BadCase("handbone/points-outside-image", "handbone",
            edit_json(HB_TRAIN, lambda d: _first_annotation(d, points=[[1, 1], [5000, 2], [3, 4000]])), DATA,
            "image1661130828001_L.json"),
    BadCase("handbone/image-truncated", "handbone", truncate(HB_IMAGE, 0.4), DATA, "image1661130828001_L.png"),
    # ---------------------------------------------------------------- images/ + masks/ folders
    BadCase("folder/rgb-colour-mask", "folder", colour_mask("masks/case_001.png"), DATA, "case_001.png"),
    BadCase("folder/mask-missing", "folder", delete("masks/case_002.png"), DATA, "case_002"),
    BadCase("folder/mask-wrong-size", "folder", resize_image("masks/case_003.png"), DATA, "case_003.png"),
    BadCase("folder/mask-not-binary", "folder", gray_values("masks/case_004.png"), DATA, "case_004.png"),
    BadCase("folder/image-not-an-image", "folder", garbage("images/case_005.png"), DATA, "case_005.png"),
    BadCase("folder/mask-not-an-image", "folder", garbage("masks/case_006.png"), DATA, "case_006.png"),
    BadCase("folder_multiclass/value-outside-classes", "folder_multiclass", gray_values("masks/case_001.png", (0, 9, 9)),
            DATA, "case_001.png", ["data.reader.task=multiclass", "data.reader.classes=[round,square,diamond]",
                                    "loss=ce"]),
    BadCase("folder_nifti/volume-truncated", "folder_nifti", truncate("images/case_002.nii.gz", 0.5), DATA,
            "case_002.nii.gz"),
    # ---------------------------------------------------------------- BraTS (NIfTI volumes)
    BadCase("brats/modality-missing", "brats", delete(f"{BRATS}/BraTS20_Training_001_t1ce.nii.gz"), DATA,
            "BraTS20_Training_001"),
    BadCase("brats/seg-truncated", "brats", truncate(f"{BRATS}/BraTS20_Training_001_seg.nii.gz", 0.5), DATA,
            "BraTS20_Training_001_seg.nii.gz"),
    # ---------------------------------------------------------------- configuration
    BadCase("config/patch-larger-than-images", "drive", None, CONFIG, "data.patch_size", ["data.patch_size=[96,96]"]),
    BadCase("config/patch-wrong-dims", "drive", None, CONFIG, "data.patch_size", ["data.patch_size=[32,32,32]"]),
    BadCase("config/model-typo", "drive", None, 1, "unett", ["model=unett"]),
    BadCase("config/key-typo", "drive", None, 1, "max_epoch", ["trainer.max_epoch=3"]),
    BadCase("config/unknown-trainer-argument", "drive", None, CONFIG, "max_epoch", ["+trainer.max_epoch=3"]),
    BadCase("config/lazy-without-cache", "drive", None, CONFIG, "data.lazy", ["+data.lazy=true"]),
    BadCase("config/splits-file-missing", "drive", None, DATA, "nosplits.json", ["++data.splits={tmp}/nosplits.json"]),
    BadCase("config/splits-unknown-case", "drive", None, DATA, "99_training",
            ['++data.splits={{train:[21_training,99_training],val:[22_training],test:[01_test]}}']),
    BadCase("config/resume-missing-checkpoint", "drive", None, CHECKPOINT, "nothing.ckpt", ["resume={tmp}/nothing.ckpt"]),
]

#: per format: the command-line overrides of a tiny run ({root} and {tmp} are filled in)
FORMAT_ARGS: dict[str, list[str]] = {
    "drive": ["data=drive"],
    "chase": ["data=chase", "data.reader.train_subjects=[1,2,3]"],
    "jsrt": ["data=jsrt", "data.preprocess.0.size=[32,32]"],
    "jsrt_png": ["data=jsrt", "data.preprocess.0.size=[32,32]"],
    "handbone": ["data=handbone", "data.preprocess.0.size=[32,32]", "data.cache_dir={tmp}/cache", "data.num_workers=0",
                 "data.max_centres=1000", "data.batch_size=2"],
    "folder": ["data=folder"],
    "folder_multiclass": ["data=folder"],
    "folder_nifti": ["data=folder"],
    "brats": ["data=brats", "data.num_workers=0", "data.patch_size=[16,16,16]", "data.batch_size=1"],
}

COMMON = ["debug=smoke", "trainer.max_epochs=1", "data.samples_per_epoch=8", "logger=csv"]
