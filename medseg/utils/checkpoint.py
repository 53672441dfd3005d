"""Checkpoints read safely and written atomically.

* :func:`load_checkpoint` is the one way the package reads a checkpoint (``medseg-eval``,
  ``-predict``, ``-ensemble``, ``-diagnose``, the best-checkpoint evaluation after training, and
  Lightning's resume through :class:`AtomicCheckpointIO`). It checks that the file exists, is not
  empty and is a whole zip archive (CRC of every member), then unpickles it with
  ``torch.load(weights_only=True)``: tensors and plain containers only. Every failure is a
  :class:`~medseg.errors.CheckpointError` that names the file; a checkpoint that carries pickled
  code is *refused*, never executed.
* :class:`AtomicCheckpointIO` (added to every Trainer by :func:`medseg.pipelines.build.build_trainer`)
  writes each checkpoint to a temporary file in the same folder, flushes it to disk and renames it
  into place (``os.replace``): a kill during a save leaves the previous ``last.ckpt`` whole, never a
  half-written one.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from medseg.errors import CheckpointError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # torch names the callable a pickle refers to


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def check_checkpoint_file(path: str | os.PathLike) -> Path:
    """Existence, size and (for zip checkpoints, the format ``torch.save`` writes) archive integrity."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file (expected a .ckpt / .pt checkpoint)")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes): the save was interrupted or the copy failed; "
                              "use another checkpoint of the run (e.g. checkpoints/last.ckpt) or retrain")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise CheckpointError(f"{path}: corrupt checkpoint archive ({_first_line(exc)}); "
                                  "use another checkpoint of the run or retrain") from exc
        if bad is not None:
            raise CheckpointError(f"{path}: corrupt checkpoint: member {bad!r} fails its CRC check "
                                  "(a damaged or partly overwritten file); use another checkpoint or retrain")
    else:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head[:2] == b"PK":  # a zip that is cut short: its central directory (at the end) is missing
            raise CheckpointError(f"{path}: truncated checkpoint ({size} bytes; the end of the archive is "
                                  "missing): the save or copy was interrupted; use another checkpoint or retrain")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a checkpoint as a dict of tensors and plain values (see the module docstring).

    Raises:
        CheckpointError: missing, empty, truncated or corrupt file; pickled code (refused); not a dict.
    """
    path = check_checkpoint_file(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        m = _GLOBAL.search(str(exc))
        if m is None:  # no callable or class named: bytes that are not a checkpoint's pickle at all
            raise CheckpointError(f"{path}: cannot read checkpoint ({_first_line(exc)}); the file is corrupt or "
                                  "not a PyTorch checkpoint; use another checkpoint of the run or retrain") from None
        what = f" (it references {next(g for g in m.groups() if g)})"
        raise CheckpointError(
            f"{path}: refused: contains pickled code, not only weights{what}. Loading it could run that code, "
            "so medseg reads only tensors and plain values; use a checkpoint written by medseg-train or "
            "a state dict saved with torch.save(model.state_dict()) by a source you trust") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({_first_line(exc)}); the file is corrupt or "
                              "not a PyTorch checkpoint; use another checkpoint of the run or retrain") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(state).__name__}, expected a dict with "
                              "a 'state_dict')")
    return state


def is_valid_checkpoint(path: str | os.PathLike) -> bool:
    """Whether :func:`load_checkpoint` would accept ``path`` and it holds a Lightning training state."""
    try:
        state = load_checkpoint(path)
    except CheckpointError:
        return False
    return "state_dict" in state and "loops" in state


def checkpoint_error(path: str | os.PathLike) -> str | None:
    """The reason :func:`load_checkpoint` refuses ``path`` (``None`` when it is readable)."""
    try:
        load_checkpoint(path)
    except CheckpointError as exc:
        return str(exc)
    return None


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to a temporary file next to ``path``, fsync, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def _is_local(path: Any) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with atomic local saves (:func:`save_atomic`) and safe loads
    (:func:`load_checkpoint`). Remote (``s3://`` ...) paths keep Lightning's own behaviour."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        save_atomic(checkpoint, str(path).removeprefix("file://"))

    def load_checkpoint(self, path, map_location: Callable | Any = None, weights_only: bool | None = None) -> dict:
        if not _is_local(path) or weights_only is False:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        return load_checkpoint(str(path).removeprefix("file://"),
                               map_location=map_location if map_location is not None else "cpu")


__all__ = ["load_checkpoint", "check_checkpoint_file", "is_valid_checkpoint", "checkpoint_error", "save_atomic",
           "AtomicCheckpointIO"]
