"""The evaluation table (save/load, old folders) and the report notes taken from the dataset."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from medseg.data.case import Case
from medseg.evaluation import EvaluationTable, roi_note
from medseg.report.run import report_markdown


def table() -> EvaluationTable:
    per_image = pd.DataFrame({"dice": [0.8, 0.6], "iou": [0.67, 0.43]}, index=pd.Index(["a", "b"], name="case_id"))
    per_class = pd.DataFrame({"case_id": ["a", "b"], "class": ["vessel"] * 2, "dice": [0.8, 0.6], "iou": [0.67, 0.43]})
    return EvaluationTable(per_image, per_class, split="test", threshold=0.4, threshold_note="Threshold 0.40 (fixed).",
                           roi_note="Metrics are computed inside each case's brain mask.",
                           data_notes=["train: x"], source={"runs": ["/r"], "checkpoint": "best.ckpt"})


def test_save_and_load_keep_the_files_and_everything_a_report_needs(tmp_path):
    t = table()
    t.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"per_image.csv", "per_class.csv", "evaluation.json"}
    back = EvaluationTable.load(tmp_path)
    pd.testing.assert_frame_equal(back.per_image, t.per_image, check_exact=False)
    assert (back.threshold, back.threshold_note, back.roi_note, back.data_notes) == \
        (0.4, t.threshold_note, t.roi_note, ["train: x"])
    assert back.identity() == t.identity() and back.summary() == pytest.approx({"test/dice": 0.7, "test/iou": 0.55,
                                                                                  "threshold": 0.4})
    (tmp_path / "evaluation.json").unlink()  # a run folder written before evaluation.json: still loads
    old = EvaluationTable.load(tmp_path)
    assert old.identity() is None and list(old.per_image.index) == ["a", "b"] and old.threshold is None


def fake_dm(reader, fov=None, use_roi=True):
    roi = np.ones((4, 4), bool)
    cases = [Case("a", np.zeros((1, 4, 4), np.float32), np.zeros((4, 4), np.int64), roi=roi)]
    return SimpleNamespace(use_roi=use_roi, fov=fov, reader=reader, cases={"test": cases, "val": []})


def test_roi_sentence_is_worded_from_the_dataset():
    from medseg.data.formats.brats import BratsReader
    from medseg.data.formats.drive import DriveReader

    retina = roi_note(fake_dm(DriveReader), "test")
    assert "field-of-view mask" in retina and "retinal" in retina
    brats = roi_note(fake_dm(BratsReader), "test")
    assert "brain mask" in brats and "retinal" not in brats and "field-of-view" not in brats
    other = roi_note(fake_dm(SimpleNamespace()), "test")
    assert "region of interest" in other and "retinal" not in other and "field-of-view" not in other
    assert "derived from the image" in roi_note(fake_dm(SimpleNamespace(), fov="auto"), "test")
    assert roi_note(fake_dm(DriveReader, use_roi=False), "test") is None
    md = report_markdown(table(), ["vessel"], "t", "/data")
    assert "brain mask" in md and "retinal" not in md
