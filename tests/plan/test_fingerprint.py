"""Fingerprint values on constructed cases, and the inputs a plan refuses (naming what it found)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medseg.data.case import Case
from medseg.errors import DataError
from medseg.plan.fingerprint import fingerprint, summary_lines
from medseg.plan.rules import depth_for, normalisation, resampling_target


def _dm(cases, task="binary", classes=("fg",)):
    by_id = {c.case_id: c for c in cases}
    return SimpleNamespace(cases={"train": cases[:-1], "val": cases[-1:], "test": []}, root="/data/x", task=task,
                           class_names=list(classes), raw_case=lambda cid: by_id[cid])


def _case(cid, shape=(40, 40), channels=1, square=10, value=0.5):
    mask = np.zeros(shape, np.uint8)
    if square:
        mask[5:5 + square, 5:5 + square] = 1
    image = np.full((channels, *shape), value, np.float32)
    image[:, 0, 0] = 0.0
    return Case(cid, image, mask)


def test_sizes_class_frequencies_empty_share_and_object_shape():
    cases = [_case("a"), _case("b"), _case("c", shape=(40, 60)), _case("d", square=0)]
    fp = fingerprint(_dm(cases))
    assert fp["cases"] == 4 and fp["channels"] == 1 and fp["spatial_dims"] == 2
    assert fp["size"]["min"] == [40, 40] and fp["size"]["max"] == [40, 60] and fp["size"]["median"] == [40, 40]
    per_case = [100 / 1600, 100 / 1600, 100 / 2400, 0.0]
    assert fp["class_frequency"]["fg"] == pytest.approx(np.mean(per_case))
    assert fp["class_frequency_per_case"]["fg"]["min"] == 0.0
    assert fp["empty_mask_share"]["fg"] == pytest.approx(0.25)
    obj = fp["objects"][0]
    assert obj["median_component_px"] == 100 and obj["components_per_case"] == pytest.approx(3 / 4)
    assert obj["shape"].startswith("compact") and obj["median_width_px"] == pytest.approx(10, abs=1)  # the square
    assert fp["intensity"][0]["p50"] == pytest.approx(0.5) and fp["modality"].startswith("grey radiograph")
    assert any("25% of cases" in line for line in summary_lines(fp))


def test_thin_structures_and_multilabel_overlap():
    cases = []
    for i in range(3):
        m = np.zeros((2, 32, 32), np.uint8)
        m[0, 10, 2:30] = 1            # a 1-pixel line: vessel-like
        m[1, 8:20, 8:20] = 1          # a square overlapping the line on 10 pixels
        cases.append(Case(f"c{i}", np.ones((3, 32, 32), np.float32) * 0.3, m))
    fp = fingerprint(_dm(cases, "multilabel", ("line", "box")))
    shapes = {o["class"]: o["shape"] for o in fp["objects"]}
    assert shapes["line"].startswith("thin") and shapes["box"].startswith("compact")
    assert fp["multilabel_overlap"] == pytest.approx(12 / (28 + 144 - 12))
    assert fp["modality"].startswith("colour photograph")


def test_ct_like_volumes_and_anisotropy():
    cases = []
    for i in range(2):
        img = np.linspace(-1000, 1000, 8 * 16 * 16, dtype=np.float32).reshape(1, 8, 16, 16)
        m = np.zeros((8, 16, 16), np.uint8)
        m[2:6, 4:12, 4:12] = 1
        cases.append(Case(f"v{i}", img, m, spacing=(5.0, 1.0, 1.0)))
    fp = fingerprint(_dm(cases))
    assert fp["modality"].startswith("CT-like") and fp["anisotropy"] == pytest.approx(5.0)
    assert fp["spacing"]["median"] == [5.0, 1.0, 1.0]
    # the foreground's intensities (nnU-Net's CT clip range and z-score statistics), not the whole volume's
    fg = np.concatenate([c.image[0][c.mask > 0] for c in cases]).astype(np.float64)
    f = fp["intensity_foreground"][0]
    assert f["mean"] == pytest.approx(fg.mean(), rel=1e-6) and f["std"] == pytest.approx(fg.std(), rel=1e-6)
    assert f["p0.5"] == pytest.approx(np.percentile(fg, 0.5)) and f["p99.5"] == pytest.approx(np.percentile(fg, 99.5))
    assert fp["intensity"][0]["p0.5"] < f["p0.5"] - 400  # the whole volume reaches far lower
    steps, why = normalisation(fp)
    assert [t["_target_"].rsplit(".", 1)[1] for t in steps] == ["ClipIntensity", "ZScore"]
    assert steps[0]["low"] == pytest.approx(f["p0.5"], rel=1e-4) and steps[0]["high"] == pytest.approx(f["p99.5"], rel=1e-4)
    assert steps[1]["mean"] == pytest.approx(f["mean"], rel=1e-4) and steps[1]["within_roi"] is False
    assert "CT normalisation" in why
    assert resampling_target(fp) is None  # anisotropic, but every case is already at the target


def _spacing_fp(z_spacings, dims=3):
    sp = np.array([[0.8, 0.8, z] for z in z_spacings])
    med = np.median(sp, 0)
    return {"spatial_dims": dims, "anisotropy": float(med.max() / med.min()),
            "spacing": {"median": med.tolist(), "min": sp.min(0).tolist(), "max": sp.max(0).tolist(),
                        "p10": np.percentile(sp, 10, axis=0).tolist()}}


def test_resampling_target_is_nnunets():
    # anisotropic (median z 4.5 mm over 0.8 mm in-plane): the coarse axis goes to its 10th percentile
    target, why = resampling_target(_spacing_fp([3.0, 3.0, 4.0, 5.0, 5.0, 6.0]))
    assert target == [0.8, 0.8, 3.0] and "10th percentile" in why and "written back" in why
    # mixed but not anisotropic (median 2.0 over 0.8 = 2.5 <= 3): the median on every axis
    target, why = resampling_target(_spacing_fp([1.5, 2.0, 2.0, 2.5]))
    assert target == [0.8, 0.8, 2.0] and "10th percentile" not in why
    assert resampling_target(_spacing_fp([2.0, 2.0, 2.01])) is None  # within 1 %: nothing to resample
    assert resampling_target(_spacing_fp([3.0, 6.0], dims=2)) is None and resampling_target({"spatial_dims": 3}) is None


def test_refuses_a_single_case_mixed_channels_and_all_empty_masks():
    with pytest.raises(DataError, match="found 1 labelled training case"):
        fingerprint(_dm([_case("only")]))
    with pytest.raises(DataError, match=r"mixed channel counts \(1 channel\(s\): 2 case\(s\).*3 channel\(s\): 1"):
        fingerprint(_dm([_case("a"), _case("b"), _case("c", channels=3)]))
    with pytest.raises(DataError, match="all 3 training masks are empty"):
        fingerprint(_dm([_case("a", square=0), _case("b", square=0), _case("c", square=0)]))


def test_depth_keeps_an_8_pixel_bottleneck():
    assert depth_for([64, 64]) == 3 and depth_for([512, 512]) == 5 and depth_for([32, 48]) == 2
