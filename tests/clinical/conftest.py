"""Fixtures for the clinical tests: a tiny BraTS-format case with a tumour placed by array index,
and a database URL (SQLite always; PostgreSQL when ``MEDSEG_TEST_POSTGRES_URL`` reaches a server)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest

# A downscaled BraTS grid: 60 x 60 x 39 voxels of 4 mm covers the 240 x 240 x 155 mm SRI24 box.
SHAPE = (60, 60, 39)
VOXEL = 4.0
# Header affines of the same head stored two ways. LPS (as BraTS ships it): +i -> patient Left,
# +j -> Posterior, +k -> Superior. RAS: +i -> Right, +j -> Anterior, +k -> Superior.
AFFINES = {
    "LPS": np.array([[-VOXEL, 0, 0, 0], [0, -VOXEL, 0, 239.0], [0, 0, VOXEL, 0], [0, 0, 0, 1]]),
    "RAS": np.array([[VOXEL, 0, 0, -239.0], [0, VOXEL, 0, 0], [0, 0, VOXEL, 0], [0, 0, 0, 1]]),
}


def index_of(mm_from_centre: tuple[float, float, float], orientation: str) -> tuple[int, int, int]:
    """Array index of a point given in mm from the box centre as (right, anterior, superior),
    worked out by hand for the two storage orders above (not with the code under test)."""
    r, a, s = mm_from_centre
    ci, cj, ck = ((n - 1) / 2 for n in SHAPE)
    if orientation == "LPS":   # i grows to the left, j grows to the back
        return round(ci - r / VOXEL), round(cj - a / VOXEL), round(ck + s / VOXEL)
    return round(ci + r / VOXEL), round(cj + a / VOXEL), round(ck + s / VOXEL)


def write_case(root: Path, case_id: str = "BraTS20_Training_001", centre_mm=(-35.0, 40.0, 30.0),
               orientation: str = "LPS", radius_vox: float = 3.5, modalities=("flair", "t1", "t1ce", "t2"),
               with_seg: bool = True, empty: bool = False, seed: int = 0) -> Path:
    """Write ``root/<case_id>/<case_id>_{modality,seg}.nii.gz`` with a spherical tumour at ``centre_mm``
    (BraTS labels: 4 enhancing rim, 1 necrotic centre, 2 oedema around)."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    affine = AFFINES[orientation]
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    c = np.array([(n - 1) / 2 for n in SHAPE])
    brain = ((ii - c[0]) / 17) ** 2 + ((jj - c[1]) / 21) ** 2 + ((kk - c[2]) / 16) ** 2 <= 1
    t = np.array(index_of(centre_mm, orientation))
    d = np.sqrt((ii - t[0]) ** 2 + (jj - t[1]) ** 2 + (kk - t[2]) ** 2)
    seg = np.zeros(SHAPE, np.uint8)
    if not empty:
        seg[d <= radius_vox + 1.5] = 2
        seg[d <= radius_vox] = 4
        seg[d <= radius_vox - 1.5] = 1
    for m in modalities:
        img = np.where(brain, 0.5 + 0.05 * rng.standard_normal(SHAPE), 0.0)
        if m in ("flair", "t2"):
            img = np.where(seg > 0, 1.0, img)
        if m == "t1ce":
            img = np.where(seg == 4, 1.2, img)
        nib.save(nib.Nifti1Image((img * 1000).astype(np.float32), affine), str(folder / f"{case_id}_{m}.nii.gz"))
    if with_seg:
        nib.save(nib.Nifti1Image(seg, affine), str(folder / f"{case_id}_seg.nii.gz"))
    return folder


@pytest.fixture
def brats_case(tmp_path):
    """``brats_case(**kwargs) -> case folder`` (see :func:`write_case`)."""
    return lambda **kw: write_case(tmp_path / "BraTS", **kw)


def _postgres_url() -> str:
    url = os.environ.get("MEDSEG_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL tests need MEDSEG_TEST_POSTGRES_URL (run `make test-postgres` to start a "
                    "throwaway server)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL tests need the psycopg driver: pip install 'medseg[postgres]'")
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # any connection failure means: no server here
        pytest.skip(f"PostgreSQL at MEDSEG_TEST_POSTGRES_URL unreachable: {type(exc).__name__}")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh empty database: a SQLite file, or a new schema-isolated PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clinical.db'}"
        return
    base = _postgres_url()
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"medseg_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))  # generated identifier, not user input
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        from sqlalchemy.pool import NullPool  # noqa: F401

        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
