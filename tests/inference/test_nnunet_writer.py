"""``writer=nnunet``: label maps with the dataset's values (regions in nnU-Net's order) on the source grid."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from medseg.data.case import Case
from medseg.data.formats.nnunet import LabelMap
from medseg.inference.writers import write_nnunet_prediction
from medseg.tasks import Task


def test_regions_resampled_and_cropped_case_goes_back_to_source(tmp_path):
    labels = LabelMap({"background": 0, "objects": [1, 2], "inner": 2}, tmp_path / "dataset.json",
                      regions_class_order=[1, 2])
    task = Task("multilabel", ["objects", "inner"])
    pred = torch.zeros(2, 4, 4, dtype=torch.bool)
    pred[0, 1:3, 1:3] = True
    pred[1, 2, 2] = True
    # the case was resampled 8x8 -> 6x6 (data.max_size), then cropped to rows/cols 1..4
    case = Case("case_007_0000", np.zeros((1, 4, 4), np.float32),
                meta={"crop_bbox": [[1, 5], [1, 5]], "original_shape": [6, 6], "resampled_from": [8, 8]})
    path = write_nnunet_prediction(tmp_path, case, task, pred, ".png", labels)
    assert path.name == "case_007.png"  # the nnU-Net identifier, without the channel suffix
    out = np.asarray(Image.open(path))
    expected6 = np.zeros((6, 6), np.uint8)
    expected6[2:4, 2:4] = 1
    expected6[3, 3] = 2  # 'inner' is written after 'objects' (regions_class_order)
    from medseg.data.preprocess import resize_nearest

    np.testing.assert_array_equal(out, resize_nearest(expected6, (8, 8)))


def test_3d_nifti_keeps_the_affine(tmp_path):
    import nibabel as nib

    task = Task("multiclass", ["a", "b"])
    pred = torch.zeros(2, 3, 4, 5, dtype=torch.bool)
    pred[1, 0, 1, 2] = True
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    case = Case("c1", np.zeros((1, 3, 4, 5), np.float32), meta={"affine": affine})
    img = nib.load(str(write_nnunet_prediction(tmp_path, case, task, pred, ".nii.gz")))
    np.testing.assert_allclose(img.affine, affine)
    data = np.asarray(img.dataobj)
    assert data[0, 1, 2] == 2 and data.sum() == 2
