from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from medseg.data.case import Case
from medseg.inference.writers import (
    BRATS_LABELS,
    brats_labels_from_regions,
    write_nifti_labels,
    write_png_mask,
    write_probabilities,
)
from medseg.tasks import Task


def test_png_binary_multiclass_multilabel(tmp_path):
    pred = torch.zeros(1, 4, 5, dtype=torch.bool)
    pred[0, 1, 2] = True
    (p,) = write_png_mask(tmp_path, "b", Task("binary", ["v"]), pred)
    arr = np.asarray(Image.open(p))
    assert arr.dtype == np.uint8 and arr[1, 2] == 255 and arr.sum() == 255
    mc = torch.zeros(2, 4, 5, dtype=torch.bool)
    mc[1, 0, 0] = mc[0, 3, 4] = True
    (p,) = write_png_mask(tmp_path, "m", Task("multiclass", ["a", "b"]), mc)
    arr = np.asarray(Image.open(p))
    assert arr[0, 0] == 2 and arr[3, 4] == 1 and arr[1, 1] == 0
    paths = write_png_mask(tmp_path, "ml", Task("multilabel", ["x", "y"]), mc)
    assert [q.name for q in paths] == ["x.png", "y.png"]


def test_nifti_keeps_affine_and_brats_labels(tmp_path):
    affine = np.array([[-1.0, 0, 0, 90], [0, -1.0, 0, 126], [0, 0, 1.0, -72], [0, 0, 0, 1]])
    case = Case("BraTS_001", np.zeros((1, 6, 7, 8), np.float32), meta={"affine": affine})
    pred = torch.zeros(3, 6, 7, 8, dtype=torch.bool)
    pred[0, 1, 1, 1] = pred[1, 2, 2, 2] = pred[2, 3, 3, 3] = True
    path = write_nifti_labels(tmp_path, case, Task("multiclass", ["NCR", "ED", "ET"]), pred, BRATS_LABELS)
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, affine)
    data = np.asarray(img.dataobj)
    assert data.shape == (6, 7, 8) and set(np.unique(data)) == {0, 1, 2, 4} and data[3, 3, 3] == 4


def test_nifti_undoes_the_readers_axis_order(tmp_path):
    case = Case("c", np.zeros((1, 2, 3, 4), np.float32), spacing=(2.0, 1.0, 1.0), meta={"nifti_axes": (2, 1, 0)})
    pred = torch.zeros(1, 2, 3, 4, dtype=torch.bool)
    pred[0, 1, 2, 3] = True
    data = np.asarray(nib.load(write_nifti_labels(tmp_path, case, Task("binary", ["t"]), pred)).dataobj)
    assert data.shape == (4, 3, 2) and data[3, 2, 1] == 1


def test_brats_regions_to_labels():
    wt = np.array([1, 1, 1, 0], bool)
    tc = np.array([0, 1, 1, 0], bool)
    et = np.array([0, 0, 1, 0], bool)
    assert brats_labels_from_regions(wt, tc, et).tolist() == [2, 1, 4, 0]


@pytest.mark.parametrize("shape,suffix", [((2, 4, 4), ".npy"), ((2, 3, 4, 4), ".nii.gz")])
def test_probabilities(tmp_path, shape, suffix):
    case = Case("p", np.zeros((1, *shape[1:]), np.float32))
    path = write_probabilities(tmp_path, case, torch.rand(shape))
    assert path.name == "p" + suffix and path.is_file()


def test_nifti_pastes_cropped_predictions_back(tmp_path):
    case = Case("c", np.zeros((1, 2, 3, 4), np.float32),
                meta={"crop_bbox": [[1, 3], [2, 5], [0, 4]], "original_shape": [5, 6, 4]})
    pred = torch.ones(1, 2, 3, 4, dtype=torch.bool)
    data = np.asarray(nib.load(write_nifti_labels(tmp_path, case, Task("binary", ["t"]), pred)).dataobj)
    assert data.shape == (5, 6, 4) and data.sum() == 24 and data[1:3, 2:5, :].all()
