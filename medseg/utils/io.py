"""Small I/O helpers: atomic writes and image reading with clear errors."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from medseg.errors import DataError


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    A crash or interrupt mid-write never leaves a truncated file where a reader expects a whole one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600 files; give the result the mode a plain open() would (0666 & ~umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_with(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Run ``writer(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_image(path: str | os.PathLike, array: np.ndarray, format: str, **save_kwargs: Any) -> Path:  # noqa: A002
    """Write a 2D array as an image file atomically (``format`` is PIL's: ``"PNG"``, ``"GIF"``, ``"TIFF"``,
    ``"JPEG"``; ``save_kwargs`` go to ``Image.save``, e.g. ``quality`` or ``compression``)."""
    image = Image.fromarray(array)
    return save_with(path, lambda p: image.save(p, format=format, **save_kwargs))


def read_image(path: str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """Read a 2D image file (png, jpg, gif, tif, bmp) as a numpy array.

    Raises :class:`DataError` naming the file when it is missing, truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with Image.open(path) as opened:
            opened.load()
            img: Image.Image = opened.convert(mode) if mode is not None and opened.mode != mode else opened
            return np.asarray(img).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc
