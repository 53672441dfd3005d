"""Fixtures for the clinical tests: a tiny BraTS-format case with a tumour placed by array index,
and a database URL (SQLite always; PostgreSQL when ``MEDSEG_TEST_POSTGRES_URL`` reaches a server)."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.apps.clinical.clinical_synth import write_case


@pytest.fixture(scope="session", autouse=True)
def _atlas_cache(tmp_path_factory):
    """The MNI region map is built once per session into a private cache (about 5 s), not into ~/.cache;
    subprocesses inherit the variable."""
    old = os.environ.get("MEDSEG_CACHE_DIR")
    os.environ["MEDSEG_CACHE_DIR"] = str(tmp_path_factory.mktemp("medseg_cache"))
    yield
    if old is None:
        os.environ.pop("MEDSEG_CACHE_DIR", None)
    else:
        os.environ["MEDSEG_CACHE_DIR"] = old


@pytest.fixture
def brats_case(tmp_path):
    """``brats_case(**kwargs) -> case folder`` (see :func:`write_case`)."""
    return lambda **kw: write_case(tmp_path / "BraTS", **kw)


def _postgres_url() -> str:
    url = os.environ.get("MEDSEG_TEST_POSTGRES_URL")
    if not url and os.environ.get("MEDSEG_TEST_POSTGRES_UNAVAILABLE"):  # set by scripts/with_postgres.sh
        pytest.skip(f"no PostgreSQL server: {os.environ['MEDSEG_TEST_POSTGRES_UNAVAILABLE']}")
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
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
