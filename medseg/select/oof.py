"""Out-of-fold (OOF) predictions on disk, and the sources selection reads them from.

One compressed ``.npz`` per case holds everything selection needs, so it never re-runs a model and
never reads a dataset (in particular never a test label)::

    logits  float16 (C, *spatial)  logit of the probabilities (sigmoid tasks) or log-probabilities
                                  (multi-class), clipped to +-LOGIT_CLIP; temperature scaling needs logits
    target  bool (K, *spatial)     the case's label as scored (one channel per foreground class)
    roi     bool (*spatial)        the scoring region, when the dataset has one
    kind, class_names              the task (so selection needs no dataset to know it)
    shape   int (n_spatial,)       the full-resolution spatial shape (maps above ``max_size`` per side
                                  are area-downsampled; labels nearest-downsampled to the same grid)

A *source* is a k-fold folder (``fold_<k>/oof/cases/*.npz``, every training-pool case once) or a
sweep folder (``trial_<n>/``: each complete trial's validation split, the same cases for every trial,
predicted once and cached in ``trial_<n>/oof/cases/``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from medseg.errors import ConfigError, DataError
from medseg.tasks import Task
from medseg.utils.io import save_with

log = logging.getLogger(__name__)

#: |logit| bound of the stored maps (float16 keeps ~3 significant digits there; p = 1 - 1e-7)
LOGIT_CLIP = 16.0
OOF_SUBDIR = ("oof", "cases")


def probs_to_logits(task: Task, probs: torch.Tensor) -> torch.Tensor:
    """Inverse of the task's activation (up to a per-pixel constant for softmax), clipped."""
    p = probs.float().clamp(1e-7, 1 - 1e-7)
    logits = p.log() if task.kind == "multiclass" else p.log() - (-p).log1p()
    return logits.clamp(-LOGIT_CLIP, LOGIT_CLIP)


def logits_to_probs(kind: str, logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities from stored logits, optionally temperature-scaled (``logits / T``)."""
    z = logits.astype(np.float32) / float(temperature)
    if kind == "multiclass":
        z = z - z.max(0, keepdims=True)
        e = np.exp(z)
        return e / e.sum(0, keepdims=True)
    return 1.0 / (1.0 + np.exp(-z))


def _resize(t: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    if tuple(t.shape[1:]) == tuple(size):
        return t
    return torch.nn.functional.interpolate(t[None].float(), size=list(size), mode=mode)[0]


def save_oof_case(path: str | Path, task: Task, probs: torch.Tensor, target: torch.Tensor,
                  roi: np.ndarray | None, max_size: int | None = None) -> Path:
    """Write one case's OOF record (see the module docstring)."""
    shape = tuple(probs.shape[1:])
    size = shape
    if max_size and max(shape) > max_size:
        scale = max_size / max(shape)
        size = tuple(max(1, round(s * scale)) for s in shape)
    p = _resize(probs.float(), size, "area")
    t = _resize(target.bool(), size, "nearest").bool()
    arrays = {"logits": probs_to_logits(task, p).numpy().astype(np.float16), "target": t.numpy(),
              "shape": np.asarray(shape, dtype=np.int64), "kind": np.asarray(task.kind),
              "class_names": np.asarray(list(task.class_names))}
    if roi is not None:
        arrays["roi"] = _resize(torch.from_numpy(np.asarray(roi, bool))[None], size, "nearest")[0].bool().numpy()
    return save_with(Path(path), lambda q: np.savez_compressed(q, allow_pickle=False, **arrays))


def oof_writer(out_dir: str | Path, task: Task, max_size: int | None) -> Callable:
    """An ``on_case(case, probs, pred, target)`` hook for :func:`medseg.pipelines.eval.evaluate_split`."""
    def write(case, probs, pred, target) -> None:
        save_oof_case(Path(out_dir) / f"{case.case_id}.npz", task, probs, target, case.roi, max_size)
    return write


@dataclass
class OOFCase:
    case_id: str
    logits: np.ndarray        # float16 (C, *spatial)
    target: np.ndarray        # bool (K, *spatial)
    roi: np.ndarray | None
    full_shape: tuple[int, ...]
    fold: int | None = None

    @property
    def area_scale(self) -> float:
        """Full-resolution pixels per stored pixel (1 when not downsampled)."""
        return float(np.prod(self.full_shape) / np.prod(self.target.shape[1:]))


def load_oof_case(path: str | Path, fold: int | None = None) -> OOFCase:
    path = Path(path)
    try:
        with np.load(path) as z:
            return OOFCase(path.stem, z["logits"], z["target"].astype(bool),
                           z["roi"].astype(bool) if "roi" in z.files else None,
                           tuple(int(s) for s in z["shape"]), fold)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a readable out-of-fold record ({exc}); delete it and rerun medseg-kfold") from exc


@dataclass
class Source:
    """One candidate configuration: a k-fold folder or one sweep trial."""

    name: str
    path: Path
    kind: str                 # "kfold" or "trial"
    task: Task
    config: dict              # the (first fold's) resolved training config
    case_files: dict[str, Path] = field(default_factory=dict)
    folds: dict[str, int] = field(default_factory=dict)   # case id -> fold (k-fold) / -1 (trial val)

    def load(self, case_id: str) -> OOFCase:
        return load_oof_case(self.case_files[case_id], self.folds.get(case_id))

    @property
    def split_key(self) -> str:
        """What must agree between sources: data location, task, the fold assignment of every case."""
        data = self.config.get("data", {})
        return json.dumps({"root": str(data.get("root")), "folds": sorted(self.folds.items())}, sort_keys=True)


def _task_of(first_record: Path, cfg: dict) -> Task:
    try:
        with np.load(first_record) as z:
            return Task(str(z["kind"]), [str(c) for c in z["class_names"]], float(cfg.get("threshold", 0.5)))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{first_record}: not a readable out-of-fold record ({exc})") from exc


def _fold_dirs(path: Path) -> list[Path]:
    return sorted((p for p in path.glob("fold_*") if (p / "results.json").is_file()),
                  key=lambda p: int(p.name.split("_")[-1]))


def _run_config(run_dir: Path) -> dict:
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise DataError(f"{run_dir}: not a medseg run folder (no .hydra/config.yaml)")
    cfg = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
    if not isinstance(cfg, dict):
        raise DataError(f"{saved}: not a mapping")
    return cfg


def kfold_source(path: Path, name: str) -> Source:
    folds = _fold_dirs(path)
    if not folds:
        raise DataError(f"{path}: no finished fold_<k>/ runs (a k-fold folder from medseg-kfold)")
    cfg = _run_config(folds[0])
    case_files: dict[str, Path] = {}
    fold_of: dict[str, int] = {}
    for fd in folds:
        k = int(fd.name.split("_")[-1])
        files = sorted(fd.joinpath(*OOF_SUBDIR).glob("*.npz"))
        if not files:
            raise DataError(f"{fd / 'oof' / 'cases'}: no out-of-fold records (*.npz); this k-fold folder predates "
                            "them or ran with save_oof_probs=false: delete its fold_<k>/oof folders and rerun "
                            "the same medseg-kfold command (finished folds are not retrained)")
        for f in files:
            if f.stem in case_files:
                raise DataError(f"{f}: case {f.stem} is out-of-fold in two folds of {path}")
            case_files[f.stem], fold_of[f.stem] = f, k
    task = _task_of(next(iter(case_files.values())), cfg)  # from the first record
    return Source(name, path, "kfold", task, cfg, case_files, fold_of)


def sources_from(paths: Sequence[str | Path], predict_trial: Callable[[Path], None] | None = None) -> list[Source]:
    """Every candidate in ``paths``: a k-fold folder is one source, a sweep folder one per complete trial
    (``predict_trial(trial_dir)`` writes a trial's validation records when they are missing)."""
    out: list[Source] = []
    for p in paths:
        p = Path(p).expanduser()
        if not p.is_dir():
            raise ConfigError(f"{p}: not a folder (give k-fold folders from medseg-kfold or sweep folders)")
        if _fold_dirs(p):
            out.append(kfold_source(p, _unique(p.name, out)))
            continue
        trials = sorted((t for t in p.glob("trial_*") if (t / "results.json").is_file()),
                        key=lambda t: int(t.name.split("_")[-1]))
        if not trials:
            raise DataError(f"{p}: neither a k-fold folder (fold_<k>/ with results.json) nor a sweep folder "
                            "(trial_<n>/ with results.json)")
        for t in trials:
            if not any(t.joinpath(*OOF_SUBDIR).glob("*.npz")):
                if predict_trial is None:
                    raise DataError(f"{t}: no validation records in {t.joinpath(*OOF_SUBDIR)}")
                predict_trial(t)
            cfg = _run_config(t)
            files = sorted(t.joinpath(*OOF_SUBDIR).glob("*.npz"))
            src = Source(_unique(f"{p.name}/{t.name}", out), t, "trial", _task_of(files[0], cfg), cfg)
            for f in files:
                src.case_files[f.stem], src.folds[f.stem] = f, -1
            out.append(src)
    if not out:
        raise ConfigError("medseg-select needs at least one k-fold or sweep folder")
    return out


def _unique(name: str, taken: Sequence[Source]) -> str:
    names = {s.name for s in taken}
    return name if name not in names else f"{name}#{len(taken) + 1}"


def check_compatible(sources: Sequence[Source]) -> None:
    """Refuse to compare sources trained on different tasks or splits (naming them)."""
    ref = sources[0]
    for s in sources[1:]:
        if (s.task.kind, s.task.class_names) != (ref.task.kind, ref.task.class_names):
            raise DataError(f"cannot select across tasks: {s.path} segments {s.task.kind} {s.task.class_names}, "
                            f"{ref.path} {ref.task.kind} {ref.task.class_names}")
        if s.split_key != ref.split_key:
            a, b = set(ref.folds.items()), set(s.folds.items())
            diff = sorted({c for c, _ in a ^ b})
            root_a, root_b = ref.config.get("data", {}).get("root"), s.config.get("data", {}).get("root")
            what = (f"data.root {root_a} vs {root_b}" if root_a != root_b else
                    f"{len(diff)} case(s) in different folds or missing, e.g. {diff[:3]}")
            raise DataError(f"cannot select across different splits: {ref.path} and {s.path} ({what}); "
                            "out-of-fold scores are comparable only on the same folds (same data, folds and seed)")
