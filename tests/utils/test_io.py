import os

import pytest

from medseg.utils.io import atomic_path, write_text_atomic


def test_atomic_write_replaces_whole_file_with_normal_permissions(tmp_path):
    target = tmp_path / "a" / "report.md"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]  # no temp files left


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "x.csv"
    write_text_atomic(target, "kept")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]
