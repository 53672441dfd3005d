"""Cases for the viewer: image, ground truth and prediction of one model on one case, packed for the
browser and kept in a byte-bounded LRU cache.

Images and ground truth come from the run's dataset through the run's own reader and preprocessing
(the datamodule of its saved config), so they are on the grid the model predicted on. Predictions
come from the masks the evaluation saved (``<model folder>/predictions/<case_id>.npz``, see
:func:`medseg.evaluation.save_prediction`: no network is built), else from saved
probabilities (``<model folder>/probs/<case_id>.npy``) where they exist, else from
the best checkpoint(s) via :func:`medseg.pipelines.build.load_weights` and
:func:`medseg.evaluation.model_probs` (a fold ensemble: the mean of its folds, as
``medseg-predict`` does). Uploads are read and preprocessed by ``medseg-predict``'s own functions.

What travels to the browser (one request per array, each sent once per case):
* ``image``: uint8 per channel, ``(C, *spatial)``, windowed to the 0.5-99.5 percentiles (not
  compressed);
* ``roi``: uint8 0/1 where the run computes its metrics, when it has one;
* ``gt`` / ``pred``: one bit per class per pixel, little-endian (uint8 up to 8 classes, uint16 up to
  16, uint32 up to 32), so 29 overlapping hand bones are one uint32 per pixel;
the masks gzip-compressed (they shrink by 100x and more). 3D volumes are sent in display order
``(axial, coronal, sagittal)`` slices so the browser only indexes.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medseg.apps.viewer.cache import ByteLRU
from medseg.apps.viewer.sources import Model, PackageModel
from medseg.data.case import Case
from medseg.data.formats.brats import REGIONS as BRATS_REGIONS
from medseg.errors import DataError, MedsegError
from medseg.evaluation import PREDICTIONS, case_target, load_prediction, model_probs
from medseg.inference.ensemble import combine
from medseg.module import SegmentationModule
from medseg.pipelines.build import DataInfo, build_module, load_weights
from medseg.pipelines.eval import load_run_config, resolve_checkpoint
from medseg.pipelines.predict import folder_cases, predict_package_input
from medseg.tasks import Task

log = logging.getLogger(__name__)

MAX_CLASSES = 32


def gzip_bytes(data: bytes) -> bytes:
    # level 1: masks are mostly runs of equal words and compress well even at the fastest level
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def pack_bits(masks: np.ndarray) -> tuple[np.ndarray, str]:
    """``(K, *spatial)`` bool -> one little-endian word per pixel with bit ``k`` = class ``k``."""
    k = masks.shape[0]
    if k > MAX_CLASSES:
        raise DataError(f"{k} classes: the viewer shows at most {MAX_CLASSES}")
    nbytes = 1 if k <= 8 else 2 if k <= 16 else 4
    flat = np.ascontiguousarray(masks, dtype=bool).reshape(k, -1).view(np.uint8)
    # hand-written instead of np.packbits(flat, axis=0): packing across the class axis walks memory
    # with a stride of N and took 0.5 s per 29 x 2048^2 mask; one shift-or per class on contiguous
    # byte planes takes a tenth of that
    packed = np.zeros((nbytes, flat.shape[1]), np.uint8)
    tmp = np.empty(flat.shape[1], np.uint8)
    for c in range(k):
        np.left_shift(flat[c], c & 7, out=tmp)
        np.bitwise_or(packed[c >> 3], tmp, out=packed[c >> 3])
    words = np.ascontiguousarray(packed.T).view({1: "<u1", 2: "<u2", 4: "<u4"}[nbytes]).reshape(masks.shape[1:])
    return words, {1: "uint8", 2: "uint16", 4: "uint32"}[nbytes]


def unpack_bits(words: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`pack_bits` (tests, benchmarks)."""
    return np.stack([(words >> i) & 1 for i in range(k)]).astype(bool)


def window_uint8(image: np.ndarray, roi: np.ndarray | None = None) -> np.ndarray:
    """Each channel to uint8 between its 0.5 and 99.5 percentiles, taken inside ``roi`` when there is
    one (the brain of a z-scored MRI: outside it is shown black), else over the whole image."""
    out = np.zeros(image.shape, np.uint8)
    inside = roi.astype(bool) if roi is not None and roi.any() else None
    for c, ch in enumerate(image):
        vals = ch[inside] if inside is not None else ch.ravel()
        vals = vals[:: max(1, vals.size // 1_000_000)]  # percentiles of a 2048^2 image from a subsample
        lo, hi = np.percentile(vals, [0.5, 99.5]) if vals.size else (0.0, 1.0)
        out[c] = np.clip((ch - lo) * (255.0 / max(float(hi - lo), 1e-8)), 0, 255).astype(np.uint8)
        if inside is not None:
            out[c][~inside] = 0
    return out


def display_order(volume: np.ndarray, nifti: bool) -> np.ndarray:
    """A ``(..., X, Y, Z)`` NIfTI-order array -> ``(..., Z, Y', X)`` with Y flipped: axial slices are
    ``[z]`` with anterior up (the orientation of the run reports' 3D overlays)."""
    if not nifti:
        return volume
    lead = volume.ndim - 3
    out = np.moveaxis(volume, (lead, lead + 1, lead + 2), (lead + 2, lead + 1, lead))
    return np.ascontiguousarray(np.flip(out, axis=lead + 1))


class Packed(NamedTuple):
    data: bytes
    dtype: str
    shape: tuple[int, ...]
    gzipped: bool


@dataclass
class CaseView:
    """One case as the browser receives it: JSON metadata and packed arrays."""

    meta: dict
    arrays: dict[str, Packed] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(len(p.data) for p in self.arrays.values()) + 4096


def make_view(case: Case, task: Task, pred: np.ndarray, target: np.ndarray | None, extra: dict) -> CaseView:
    """Pack image, prediction and (optional) target of ``case`` for the browser."""
    nifti = len(case.spatial_shape) == 3 and case.meta.get("affine") is not None \
        and case.meta.get("nifti_axes") is None
    image = display_order(window_uint8(np.asarray(case.image, dtype=np.float32), case.roi), nifti)
    pred = display_order(np.asarray(pred, dtype=bool), nifti)
    target = display_order(np.asarray(target, dtype=bool), nifti) if target is not None else None
    spatial = tuple(int(s) for s in image.shape[1:])
    view = CaseView(meta={
        "case_id": case.case_id, "ndim": len(spatial), "shape": list(spatial), "channels": int(image.shape[0]),
        "classes": list(task.class_names), "has_gt": target is not None,
        # nested regions (BraTS WT > TC > ET) are drawn innermost on top; overlapping classes (hand
        # bones) in the mean colour of the classes at the pixel
        "nested": list(task.class_names) == list(BRATS_REGIONS),
        # 3D: coronal and sagittal slices are shown with the first axis (z: inferior->superior) up
        "flip_rows_non_axial": bool(nifti),
        "pred_pixels": [int(n) for n in np.count_nonzero(pred.reshape(pred.shape[0], -1), axis=1)],
        "gt_pixels": [int(n) for n in np.count_nonzero(target.reshape(target.shape[0], -1), axis=1)]
        if target is not None else None,
        **extra})
    # the image is sent as it is: gzip takes longer than the loopback transfer and gains little on
    # noisy radiographs; the masks shrink 100x and more
    view.arrays["image"] = Packed(image.tobytes(), "uint8", tuple(image.shape), False)
    words, dtype = pack_bits(pred)
    view.arrays["pred"] = Packed(gzip_bytes(words.tobytes()), dtype, spatial, True)
    ref = target if target is not None and target.any() else pred
    if target is not None:
        words, dtype = pack_bits(target)
        view.arrays["gt"] = Packed(gzip_bytes(words.tobytes()), dtype, spatial, True)
    if case.roi is not None:  # where the metrics are computed (DRIVE field of view, BraTS brain)
        roi = display_order(np.asarray(case.roi, dtype=bool), nifti)
        view.arrays["roi"] = Packed(gzip_bytes(roi.astype(np.uint8).tobytes()), "uint8", spatial, True)
    view.meta["has_roi"] = case.roi is not None
    if len(spatial) == 3:  # slice with the largest tumour (union of classes) along each axis
        union = ref.any(0)
        view.meta["largest_slice"] = [int(union.sum(axis=tuple(j for j in range(3) if j != a)).argmax())
                                      for a in range(3)]
    return view


HYDRA_REF = re.compile(r"\$\{hydra:([A-Za-z0-9_.]+)\}")


def run_config(run_dir: Path) -> DictConfig:
    """The run's saved config with its ``${hydra:...}`` references (``paths.root_dir``,
    ``paths.output_dir``) replaced by the values the run had (``.hydra/hydra.yaml``): the viewer is
    not a Hydra app, so Hydra's resolver is not there to answer them."""
    cfg = load_run_config(run_dir)
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    hydra_cfg = OmegaConf.load(hydra_yaml) if hydra_yaml.is_file() else None
    hydra = hydra_cfg.get("hydra") if isinstance(hydra_cfg, DictConfig) else None
    fallback = {"runtime.cwd": str(run_dir), "runtime.output_dir": str(run_dir)}

    def value(m: re.Match) -> str:
        v = OmegaConf.select(hydra, m.group(1), default=None) if hydra is not None else None
        v = fallback.get(m.group(1)) if v is None else v
        if v is None:
            raise DataError(f"{run_dir / '.hydra' / 'config.yaml'}: cannot resolve ${{hydra:{m.group(1)}}}")
        return str(v)

    resolved = OmegaConf.create(HYDRA_REF.sub(value, OmegaConf.to_yaml(cfg)))
    assert isinstance(resolved, DictConfig)  # a run config is a mapping
    return resolved


class RunAssets:
    """The parts of one run folder the viewer needs: its config, reader + preprocessing, network."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.cfg = run_config(run_dir)
        root = Path(str(self.cfg.data.root)).expanduser()
        if not root.exists():
            raise DataError(f"{run_dir}: the run's data.root {root} does not exist (the viewer reads images "
                            "and ground truth from the run's dataset)")
        self.dm = instantiate(self.cfg.data, _convert_="partial")
        self.dm.reader = self.dm.reader_factory(root=str(self.dm.root))  # no setup(): read cases one by one
        self.task = Task(self.dm.task, self.dm.class_names, threshold=self.cfg.get("threshold", 0.5))
        self._module: SegmentationModule | None = None
        self._lock = threading.Lock()

    def load_case(self, case_id: str) -> Case:
        """One case, read and preprocessed exactly as the run's datamodule does for training."""
        return self.dm._prepare(self.dm.reader.load_case(case_id))

    def module(self, in_channels: int) -> SegmentationModule:
        with self._lock:
            if self._module is None:
                info = DataInfo(task=self.dm.task, class_names=list(self.dm.class_names),
                                in_channels=in_channels, spatial_dims=self.dm.spatial_dims)
                module = build_module(self.cfg, info)
                load_weights(module, resolve_checkpoint(self.run_dir, "best"))
                self._module = module.eval()
            return self._module

    def channel_names(self, n: int) -> list[str] | None:
        """The image channels' names where the reader has them (BraTS modalities)."""
        names = self.cfg.data.reader.get("modalities")
        return [str(x) for x in names] if names is not None and len(names) == n else None

    def upload_cases(self, folder: Path) -> list[Case]:
        """An uploaded image/volume in ``folder``, read and preprocessed by ``medseg-predict``'s
        functions (the same preprocessing as training)."""
        channels = int(getattr(self.dm.reader, "in_channels", 1))
        return folder_cases(folder, channels, self.dm.preprocess)


class CaseStore:
    """Case views of every model, computed on demand and kept in a :class:`ByteLRU`."""

    def __init__(self, models: list[Model], max_bytes: int = 512 * 2**20,
                 packages: list[PackageModel] | None = None) -> None:
        self.models = {m.id: m for m in models}
        self.packages = {p.id: p for p in packages or []}
        self.cache: ByteLRU[CaseView] = ByteLRU(max_bytes, lambda v: v.nbytes)
        self._runs: dict[Path, RunAssets] = {}
        self._runs_lock = threading.Lock()
        self._compute = threading.Lock()  # one prediction at a time: the CPU is the limit anyway

    def assets(self, run_dir: Path) -> RunAssets:
        with self._runs_lock:
            if run_dir not in self._runs:
                try:
                    self._runs[run_dir] = RunAssets(run_dir)
                except MedsegError:
                    raise
                except Exception as exc:  # a corrupt config, missing reader...: this run only
                    raise DataError(f"{run_dir}: cannot load the run's config and data "
                                    f"({type(exc).__name__}: {exc})") from exc
            return self._runs[run_dir]

    def model(self, model_id: str) -> Model:
        if model_id not in self.models:
            raise KeyError(model_id)
        return self.models[model_id]

    def _probs_fn(self, model: Model, in_channels: int):
        fns = [model_probs(self.assets(rd).module(in_channels)) for rd in model.run_dirs]
        return fns[0] if len(fns) == 1 else (lambda case: combine([f(case) for f in fns]))

    def _saved_probs(self, model: Model, case: Case) -> torch.Tensor | None:
        path = model.folder / "probs" / f"{case.case_id}.npy"
        if not path.is_file():
            return None
        try:
            probs = torch.from_numpy(np.load(path).astype(np.float32))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable saved probabilities (%s); predicting instead", path, exc)
            return None
        if tuple(probs.shape[1:]) != case.spatial_shape:  # saved downsampled (probs_max_size)
            mode = "bilinear" if probs.ndim == 3 else "trilinear"
            probs = F.interpolate(probs[None], size=case.spatial_shape, mode=mode, align_corners=False)[0]
        return probs

    def _saved_prediction(self, model: Model, case: Case) -> tuple[np.ndarray, float | None] | None:
        """The mask the evaluation scored (``predictions/<case_id>.npz``), if saved on this grid."""
        path = model.folder / PREDICTIONS / f"{case.case_id}.npz"
        if not path.is_file():
            return None
        try:
            mask, thr = load_prediction(path)
        except DataError as exc:
            log.warning("%s; predicting instead", exc)
            return None
        if tuple(mask.shape[1:]) != case.spatial_shape:
            log.warning("%s: shape %s, the case is %s; predicting instead", path, mask.shape[1:], case.spatial_shape)
            return None
        return mask, thr

    def case_view(self, model_id: str, case_id: str) -> CaseView:
        model = self.model(model_id)
        if case_id not in model.per_image.index:
            raise KeyError(case_id)
        return self.cache.get_or_create((model_id, case_id), lambda: self._make(model, case_id))

    def _make(self, model: Model, case_id: str) -> CaseView:
        if not model.run_dirs:
            raise DataError(f"{model.folder}: no run folder with a checkpoint and config for this model "
                            "(give the run or k-fold folder itself to see its predictions)")
        assets = self.assets(model.run_dirs[0])
        with self._compute:
            t0 = time.perf_counter()
            case = assets.load_case(case_id)
            t1 = time.perf_counter()
            thr = model.threshold if model.threshold is not None else assets.task.threshold
            # first the mask the evaluation saved, then saved probabilities, then the checkpoint(s)
            saved = self._saved_prediction(model, case)
            if saved is not None:
                pred, saved_thr = saved
                thr = saved_thr if saved_thr is not None else thr
                source = "saved prediction"
            else:
                probs = self._saved_probs(model, case)
                source = "saved probabilities" if probs is not None else (
                    f"best checkpoint{'s' if len(model.run_dirs) > 1 else ''} of {len(model.run_dirs)} run(s)")
                if probs is None:
                    probs = self._probs_fn(model, int(case.image.shape[0]))(case)
                pred = assets.task.discretize(probs[None], thr)[0].numpy()
                del probs
            target_t = case_target(assets.task, case)
            target = target_t.numpy() if target_t is not None else None
            t2 = time.perf_counter()
        extra = {"server_ms": {"read": round(1000 * (t1 - t0)), "predict": round(1000 * (t2 - t1))},
                 "model": model.id, "prediction_source": source, "threshold": thr,
                 "channel_names": assets.channel_names(int(case.image.shape[0])),
                 "metrics": _row(model.per_image, case_id), "class_metrics": _class_rows(model, case_id)}
        view = make_view(case, assets.task, pred, target, extra)
        view.meta["server_ms"]["pack"] = round(1000 * (time.perf_counter() - t2))
        return view

    def predict_upload(self, model_id: str, folder: Path, token: str) -> CaseView:
        """Predict the one file in ``folder`` with ``model``; the view is cached under ``token``."""
        model = self.model(model_id)
        if not model.run_dirs:
            raise DataError(f"{model.name}: no checkpoint to predict with (not a run or k-fold folder)")
        assets = self.assets(model.run_dirs[0])
        with self._compute:
            cases = assets.upload_cases(folder)
            case = cases[0]
            expected = assets.dm.spatial_dims
            if len(case.spatial_shape) != expected:
                raise DataError(f"{case.meta.get('source', case.case_id)}: a {len(case.spatial_shape)}D input, "
                                f"the model of {model.name} is {expected}D")
            probs = self._probs_fn(model, int(case.image.shape[0]))(case)
            thr = model.threshold if model.threshold is not None else assets.task.threshold
            pred = assets.task.discretize(probs[None], thr)[0].numpy()
            del probs
        view = make_view(case, assets.task, pred, None, {"model": model.id, "prediction_source": "upload",
                                                         "channel_names": assets.channel_names(int(case.image.shape[0])),
                                                         "threshold": thr, "metrics": {}, "class_metrics": {}})
        return self.cache.put(("upload", token), view)

    def predict_package_upload(self, package_id: str, folder: Path, token: str) -> CaseView:
        """Predict the one file in ``folder`` with an exported package, through
        :func:`medseg.pipelines.predict.predict_package_input` (``medseg-predict package=``'s code)."""
        if package_id not in self.packages:
            raise KeyError(package_id)
        pkg = self.packages[package_id]
        runner = pkg.runner
        files = [f for f in folder.iterdir() if f.is_file()]
        if len(files) != 1:
            raise DataError(f"{folder}: expected one uploaded file, found {len(files)}")
        with self._compute:
            case, pred, _ = predict_package_input(runner, files[0])
            if len(case.spatial_shape) != runner.spatial_dims:
                raise DataError(f"{case.meta.get('source', case.case_id)}: a {len(case.spatial_shape)}D input, "
                                f"the package {pkg.name} is {runner.spatial_dims}D")
        task = Task(runner.task, runner.classes)
        thr = [float(t) for t in runner.thresholds] if runner.task != "multiclass" else None
        view = make_view(case, task, pred.numpy(), None,
                         {"model": pkg.id, "prediction_source": f"package {pkg.name} ({runner.engine})",
                          "channel_names": list(runner.manifest["input"].get("modalities") or []) or None,
                          "threshold": thr[0] if thr and len(set(thr)) == 1 else thr,
                          "metrics": {}, "class_metrics": {}})
        return self.cache.put(("upload", token), view)

    def clinical(self, model_id: str, case_id: str, db_url: str, use_prediction: bool) -> dict:
        """The brain-tumour cross-check of a BraTS case (regions, symptoms, hospitals) through
        :func:`medseg.apps.clinical.flow.diagnose`, from the case's ground truth or the model's prediction."""
        from medseg.apps.clinical.flow import diagnose

        model = self.model(model_id)
        if case_id not in model.per_image.index:
            raise KeyError(case_id)
        if not model.run_dirs:
            raise DataError(f"{model.name}: no run folder, so no BraTS case folder to cross-check")
        reader = self.assets(model.run_dirs[0]).dm.reader
        if not hasattr(reader, "case_dir"):
            raise DataError(f"{model.name}: the clinical cross-check is for BraTS cases (this run reads "
                            f"{type(reader).__name__})")
        with self._compute:
            result = diagnose(case_dir=reader.case_dir(case_id), db_url=db_url,
                              run_dir=model.run_dirs[0] if use_prediction else None, out_dir=None)
        loc, check = result.localisation, result.crosscheck
        out = {"source": result.source, "hemisphere": loc.hemisphere, "volumes_cm3": loc.volumes_cm3,
               "found": [asdict(r) for r in loc.found], "crosscheck": check.to_dict(),
               "patient": {"age": result.patient.age, "sex": result.patient.sex},
               "disclaimer": "research software, not a diagnosis"}
        # numpy scalars and tuples -> JSON types
        return json.loads(json.dumps(out, default=lambda o: o.item() if hasattr(o, "item") else str(o)))

    def upload_view(self, token: str) -> CaseView | None:
        return self.cache.get(("upload", token))


def _clean(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return f if f == f and abs(f) != float("inf") else None


def _row(df, case_id: str) -> dict:
    return {k: _clean(v) for k, v in df.loc[case_id].items()}


def _class_rows(model: Model, case_id: str) -> dict:
    pc = model.per_class
    if pc is None or "case_id" not in pc.columns:
        return {}
    rows = pc[pc["case_id"].astype(str) == case_id]
    return {str(r["class"]): {k: _clean(v) for k, v in r.items() if k not in ("case_id", "class")}
            for _, r in rows.iterrows()}
