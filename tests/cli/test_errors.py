"""clean_errors: the project's errors end with one message and their exit status; bugs keep tracebacks."""

from __future__ import annotations

import pytest

from medseg.cli._errors import clean_errors
from medseg.errors import CheckpointError, ConfigError, DataError, Interrupted


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("MEDSEG_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


def _raiser(exc):
    @clean_errors("medseg-x")
    def main():
        raise exc
    return main


@pytest.mark.parametrize("exc,code", [(ConfigError("k: bad"), 2), (DataError("f.png: bad"), 3),
                                      (CheckpointError("a.ckpt: bad"), 4), (Interrupted(15, "/r", "/r/last.ckpt"), 143),
                                      (Interrupted(2), 130), (KeyboardInterrupt(), 130)])
def test_known_errors_exit_with_their_status_and_one_message(exc, code, capsys):
    with pytest.raises(SystemExit) as out:
        _raiser(exc)()
    assert out.value.code == code
    err = capsys.readouterr().err
    assert err.startswith("medseg-x: ") and "Traceback" not in err


def test_instantiation_errors_are_config_errors_or_their_cause(capsys):
    from hydra.errors import InstantiationException

    wrapped = InstantiationException("Error in call to target 'X':\nValueError('annotator must be 1 or 2')")
    wrapped.__cause__ = ValueError("annotator must be 1 or 2")
    with pytest.raises(SystemExit) as out:
        _raiser(wrapped)()
    assert out.value.code == 2 and "annotator must be 1 or 2" in capsys.readouterr().err
    data = InstantiationException("Error in call to target 'Reader'")
    data.__cause__ = DataError("/x: data.root does not exist")
    with pytest.raises(SystemExit) as out:
        _raiser(data)()
    assert out.value.code == 3


def test_bugs_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        _raiser(ZeroDivisionError("bug"))()


def test_debug_switch_reraises(monkeypatch):
    monkeypatch.setenv("MEDSEG_DEBUG", "1")
    with pytest.raises(DataError):
        _raiser(DataError("f: bad"))()
