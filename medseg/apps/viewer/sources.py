"""What the viewer shows: the models found in the folders given on the command line.

A *model* is anything with a ``per_image.csv`` (a run, an evaluation, a k-fold fold or its fold
ensemble, an ensemble member): :func:`medseg.report.compare.discover` finds them exactly as
``medseg-report`` does. For each model the viewer also needs where its predictions come from:
saved probabilities (``probs/<case_id>.npy``) where the run wrote them, else the run folders whose
best checkpoints can predict (several for a fold ensemble: the mean of its folds).

A folder that cannot be read (corrupt, half written, not a run) becomes a :class:`SourceError`
shown in the app; the other folders are still served.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medseg.errors import DataError
from medseg.pipelines.ensemble import fold_dirs
from medseg.report.compare import ModelResult, _unique_names, discover

log = logging.getLogger(__name__)


@dataclass
class Model:
    id: str
    name: str
    kind: str
    source: Path
    folder: Path
    per_image: pd.DataFrame
    per_class: pd.DataFrame | None
    curves: list[Path] = field(default_factory=list)
    run_dirs: list[Path] = field(default_factory=list)
    threshold: float | None = None

    @property
    def can_predict(self) -> bool:
        return bool(self.run_dirs)

    def summary(self) -> dict:
        metrics = [c for c in self.per_image.columns if pd.api.types.is_numeric_dtype(self.per_image[c])]
        classes = list(dict.fromkeys(self.per_class["class"])) if self.per_class is not None else []
        return {"id": self.id, "name": self.name, "kind": self.kind, "source": str(self.source),
                "folder": str(self.folder), "n_cases": int(len(self.per_image)), "metrics": metrics,
                "classes": [str(c) for c in classes], "can_predict": self.can_predict,
                "mean": {m: _num(self.per_image[m].mean()) for m in metrics},
                "run_dirs": [str(p) for p in self.run_dirs]}


@dataclass
class SourceError:
    source: str
    message: str


def _num(x) -> float | None:
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None


def is_run_dir(d: Path) -> bool:
    return (d / ".hydra" / "config.yaml").is_file() and (d / "checkpoints").is_dir()


def run_dirs_for(source: Path, folder: Path, name: str) -> list[Path]:
    """The run folders whose checkpoints reproduce ``folder``'s predictions (empty: none known)."""
    if is_run_dir(folder):
        return [folder]
    if folder.name == "oof" and is_run_dir(folder.parent):  # k-fold: fold_<k>/oof
        return [folder.parent]
    if folder.parent.name == "eval" and is_run_dir(folder.parent.parent):  # <run>/eval/<split>_<time>
        return [folder.parent.parent]
    if "_fold_" in name:  # k-fold: ensemble/models/<name>_fold_<k>
        d = source / f"fold_{name.rsplit('_fold_', 1)[-1]}"
        return [d] if is_run_dir(d) else []
    if folder.parent == source / "ensemble" / "models":  # the fold ensemble: mean of the folds
        return [d for d in fold_dirs(source) if is_run_dir(d)]
    return []


def _threshold(*folders: Path) -> float | None:
    for d in folders:
        f = d / "results.json"
        if f.is_file():
            try:
                value = json.loads(f.read_text()).get("threshold")
            except (OSError, ValueError):
                continue
            if isinstance(value, (int, float)):
                return float(value)
    return None


def check_complete(table: Path) -> None:
    """A ``per_image.csv`` / ``per_class.csv`` cut short by a crash (pandas would read the partial last
    row as a case with missing values) raises :class:`DataError`."""
    if not table.is_file():
        return
    raw = table.read_bytes()
    if not raw.endswith(b"\n"):
        raise DataError(f"{table}: the last line is cut short (the file looks half-written: rerun the "
                        "evaluation that writes it)")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"))))
    short = [i + 1 for i, r in enumerate(rows) if r and len(r) != len(rows[0])]
    if short:
        raise DataError(f"{table}: line {short[0]} has a different number of fields than the header")


@dataclass
class PackageModel:
    """An exported package (``medseg-export``) offered for "Try it": checksums verified at start."""

    id: str
    name: str
    path: Path
    runner: Any  # medseg.export.runner.Model (imported lazily: onnxruntime)

    def summary(self) -> dict:
        m = self.runner.manifest
        return {"id": self.id, "name": self.name, "kind": "package", "path": str(self.path),
                "task": m["task"]["kind"], "classes": [str(c) for c in m["task"]["classes"]],
                "spatial_dims": int(m["input"]["spatial_dims"]), "channels": int(m["input"]["channels"]),
                "engine": getattr(self.runner, "engine", None)}


def is_package(path: str | Path) -> bool:
    """An exported package: a folder with ``package.json`` or a ``.zip`` file."""
    p = Path(path).expanduser()
    return (p.is_dir() and (p / "package.json").is_file()) or (p.is_file() and p.suffix.lower() == ".zip")


def load_packages(paths: list[str | Path]) -> tuple[list[PackageModel], list[SourceError]]:
    """Each package verified and loaded through :func:`medseg.export.package.load_package` (the loader
    of ``medseg-predict package=``); a tampered or broken one becomes a :class:`SourceError`."""
    from medseg.errors import MedsegError
    from medseg.export.package import load_package

    packages: list[PackageModel] = []
    errors: list[SourceError] = []
    for p in paths:
        path = Path(p).expanduser().resolve()
        try:
            runner = load_package(path)
        except MedsegError as exc:
            errors.append(SourceError(str(path), str(exc)))
            continue
        except Exception as exc:  # an engine that cannot load the network file: this package only
            errors.append(SourceError(str(path), f"{path}: cannot load the package ({type(exc).__name__}: {exc})"))
            continue
        name = str(runner.manifest.get("name") or path.stem)
        packages.append(PackageModel(id=f"p{len(packages)}", name=name, path=path, runner=runner))
    return packages, errors


def load_sources(paths: list[str | Path]) -> tuple[list[Model], list[SourceError]]:
    """Models of every folder in ``paths``, and one error per folder that could not be read.

    A path that does not exist at all is a :class:`DataError` (a typo on the command line)."""
    found: list[tuple[Path, ModelResult]] = []
    errors: list[SourceError] = []
    for p in paths:
        source = Path(p).expanduser()
        if not source.exists():
            raise DataError(f"{source}: folder not found (give run, k-fold, evaluation or ensemble folders)")
        source = source.resolve()
        try:
            results = discover(source)
        except DataError as exc:
            errors.append(SourceError(str(source), str(exc)))
            continue
        except Exception as exc:  # pandas/OS errors of a half-written folder: shown, not fatal
            errors.append(SourceError(str(source), f"{source}: cannot read ({type(exc).__name__}: {exc})"))
            continue
        try:
            for r in results:
                check_complete(r.folder / "per_image.csv")
                check_complete(r.folder / "per_class.csv")
        except DataError as exc:
            errors.append(SourceError(str(source), str(exc)))
            continue
        found += [(source, r) for r in results]
    results = [r for _, r in found]
    _unique_names(results)
    models = []
    for i, (source, r) in enumerate(found):
        runs = run_dirs_for(source, r.folder, r.folder.name)
        models.append(Model(id=f"m{i}", name=r.name, kind=r.kind, source=source, folder=r.folder,
                            per_image=r.per_image, per_class=r.per_class, curves=list(r.curves),
                            run_dirs=runs, threshold=_threshold(r.folder, *runs[:1])))
    return models, errors
