"""An on-disk cache of preprocessed cases as ``.npy`` files (the BraTS predecessor project's approach).

The first run reads the source files (NIfTI, PNG...), preprocesses each case once and writes
``<cache_dir>/<fingerprint>/<case_id>/{image,mask,roi}.npy`` plus ``meta.json``. Later runs, and
every epoch after the first, read only those arrays; with ``mmap=True`` they are memory-mapped, so
a patch sampler touches only the bytes of its patch and memory stays bounded whatever the number
of cases.

The fingerprint hashes the reader's settings and the preprocessing steps: change either and a new
cache folder is used (stale arrays are never served). Writes are atomic per file, and ``meta.json``
is written last, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medseg.data.case import Case
from medseg.utils.io import save_with, write_json_atomic


def _describe(obj: Any) -> Any:
    """A JSON-able description of a config object (class + simple attributes, recursively)."""
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj.resolve())
    if isinstance(obj, (list, tuple)):
        return [_describe(o) for o in obj]
    if isinstance(obj, dict):
        return {str(k): _describe(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    attrs = {k: _describe(v) for k, v in sorted(vars(obj).items()) if not k.startswith("_")} \
        if hasattr(obj, "__dict__") else repr(obj)
    return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}", "attrs": attrs}


def fingerprint(*objects: Any) -> str:
    """Short stable hash of the settings of ``objects`` (readers, preprocessing steps)."""
    text = json.dumps([_describe(o) for o in objects], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist()}
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return np.asarray(value["__ndarray__"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _save_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array))


class CaseCache:
    """Preprocessed cases under ``root/<key>/``.

    Args:
        root: cache folder (``data.cache_dir``).
        key: fingerprint of the reader and preprocessing (see :func:`fingerprint`).
        mmap: return memory-mapped arrays (lazy loading) instead of arrays in memory.
    """

    def __init__(self, root: str | Path, key: str, mmap: bool = False) -> None:
        self.dir = Path(root).expanduser() / key
        self.mmap = mmap

    def _case_dir(self, case_id: str) -> Path:
        return self.dir / case_id

    def has(self, case_id: str) -> bool:
        return (self._case_dir(case_id) / "meta.json").is_file()

    def save(self, case: Case) -> None:
        d = self._case_dir(case.case_id)
        for name in ("image", "mask", "roi"):
            arr = getattr(case, name)
            if arr is not None:
                save_with(d / f"{name}.npy", partial(_save_npy, array=arr))
            elif (d / f"{name}.npy").exists():
                (d / f"{name}.npy").unlink()
        write_json_atomic(d / "meta.json", {
            "case_id": case.case_id, "group": case.group,
            "spacing": list(case.spacing) if case.spacing is not None else None,
            "meta": _jsonable(case.meta)})

    def load(self, case_id: str) -> Case:
        d = self._case_dir(case_id)
        info = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        mode: Literal["r"] | None = "r" if self.mmap else None

        def arr(name: str):
            p = d / f"{name}.npy"
            return np.load(p, mmap_mode=mode) if p.exists() else None

        return Case(case_id=info["case_id"], image=arr("image"), mask=arr("mask"), roi=arr("roi"),
                    spacing=tuple(info["spacing"]) if info["spacing"] is not None else None,
                    group=info["group"], meta=_from_json(info["meta"]))


class CachedCases(Sequence):
    """A read-only sequence of cases loaded from a :class:`CaseCache` on access (lazy)."""

    def __init__(self, cache: CaseCache, case_ids: Sequence[str]) -> None:
        self.cache, self.case_ids = cache, list(case_ids)

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.cache.load(self.case_ids[index])
