from __future__ import annotations

import numpy as np
import pytest

from medseg.data.case import DataError
from medseg.inference.rle import read_rle_csv, rle_decode, rle_encode, write_rle_csv


def test_row_major_convention_by_hand():
    m = np.array([[0, 1, 1],
                  [1, 0, 0]], bool)
    assert rle_encode(m) == "2 3"             # pixels 2,3,4 in row-major order
    assert rle_encode(m, order="F") == "2 2 5 1"  # column-major: (1,0), (0,1) are pixels 2, 3; (0,2) is 5
    assert rle_encode(np.zeros((2, 2), bool)) == ""
    assert rle_encode(np.ones((2, 2), bool)) == "1 4"


@pytest.mark.parametrize("order", ["C", "F"])
def test_round_trip_random_masks(order):
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = rng.random((17, 23)) < 0.3
        assert np.array_equal(rle_decode(rle_encode(m, order), m.shape, order), m)


def test_csv_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    rows = [(f"img{i}.png", c, rng.random((8, 9)) < 0.5) for i in range(2) for c in ("finger-1", "Radius")]
    rows.append(("img9.png", "Ulna", np.zeros((8, 9), bool)))
    path = write_rle_csv(rows, tmp_path / "sub.csv")
    assert path.read_text().splitlines()[0] == "image_name,class,rle"
    back = read_rle_csv(path, (8, 9))
    for name, cls, m in rows:
        assert np.array_equal(back[(name, cls)], m)


def test_bad_rle_is_a_clear_error():
    with pytest.raises(DataError, match="odd number"):
        rle_decode("1 2 3", (4, 4))
    with pytest.raises(DataError, match="outside"):
        rle_decode("10 10", (4, 4))
