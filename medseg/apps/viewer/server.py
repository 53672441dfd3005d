"""The viewer's web app: a JSON/bytes API over :class:`CaseStore` plus the static front end.

Only two kinds of files are ever read from disk on a request: the packaged front end
(``static/``, through Starlette's ``StaticFiles``, which refuses paths and symlinks that leave it)
and files inside a model's own folder (:func:`safe_file`). Case ids are looked up in the model's
``per_image.csv``, never used as paths. Uploads go to a private temporary folder, are size- and
type-checked while they stream in, and are deleted once read.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import zlib
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from medseg.apps.viewer.cases import CaseStore, CaseView
from medseg.apps.viewer.sources import Model, SourceError, is_package, load_packages, load_sources
from medseg.errors import MedsegError
from medseg.pipelines.predict import IMAGE_SUFFIXES
from medseg.report.stats import paired_comparison
from medseg.report.tables import leaderboard

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
UPLOAD_SUFFIXES = (*IMAGE_SUFFIXES, ".nii", ".nii.gz")
#: the files of a model folder the app may serve (its report figures and tables)
SERVED_SUFFIXES = (".png", ".csv", ".md", ".json")
# Content-Security-Policy: the page may load and fetch from this server only (no CDN, fonts, telemetry)
CSP = ("default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; "
       "script-src 'self'; font-src 'none'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")
CHUNK = 1 << 20


def safe_file(root: Path, rel: str) -> Path:
    """``root/rel`` if it is a regular file inside ``root`` after resolving symlinks, else 404."""
    parts = PurePosixPath(rel).parts
    if (not rel or "\x00" in rel or "\\" in rel or rel.startswith("/") or any(p in ("..", ".") for p in parts)
            or not rel.lower().endswith(SERVED_SUFFIXES)):
        raise HTTPException(404, "not found")
    base = root.resolve()
    try:
        target = (base / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        raise HTTPException(404, "not found") from None
    if not target.is_relative_to(base) or not target.is_file():
        raise HTTPException(404, "not found")
    return target


def sniff_upload(head: bytes, name: str, check_magic: bool = True) -> str | None:
    """The suffix of ``name`` if it is an accepted type and (``check_magic``) the upload's first
    bytes agree with it, else ``None``."""
    lower = name.lower()
    suffix = ".nii.gz" if lower.endswith(".nii.gz") else Path(lower).suffix
    if suffix not in UPLOAD_SUFFIXES:
        return None
    if not check_magic:
        return suffix
    magic = {".png": [b"\x89PNG\r\n\x1a\n"], ".jpg": [b"\xff\xd8\xff"], ".jpeg": [b"\xff\xd8\xff"],
             ".tif": [b"II*\x00", b"MM\x00*"], ".tiff": [b"II*\x00", b"MM\x00*"], ".bmp": [b"BM"],
             ".gif": [b"GIF87a", b"GIF89a"], ".nii.gz": [b"\x1f\x8b"]}
    if suffix == ".nii":
        ok = len(head) >= 348 and head[344:347] in (b"n+1", b"ni1") or head[:4] in (b"\x5c\x01\x00\x00",
                                                                                    b"\x00\x00\x01\x5c")
        return suffix if ok else None
    return suffix if any(head.startswith(m) for m in magic[suffix]) else None


def _json_clean(df: pd.DataFrame) -> list[dict]:
    out = df.replace([np.inf, -np.inf], np.nan).astype(object).where(df.notna(), None)
    return out.to_dict("records")


def create_app(paths: list[str | Path], *, cache_mb: int = 512, max_upload_mb: int = 64,
               allowed_hosts: list[str] | None = None, n_boot: int = 2000,
               clinical_db: str | None = None) -> FastAPI:
    """The viewer over the run / k-fold / evaluation / ensemble folders ``paths``; exported packages
    among them (a folder with ``package.json`` or a ``.zip``) are offered for "Try it" only, each
    verified against its checksums first (a tampered one is listed as an error, the rest served).

    ``clinical_db``: SQLAlchemy URL of the clinical database; with it, BraTS cases get the clinical
    cross-check (``medseg.apps.clinical.flow.diagnose``).

    ``allowed_hosts``: ``Host`` headers accepted (DNS-rebinding guard); default: loopback names."""
    packages, errors = load_packages([p for p in paths if is_package(p)])
    models, run_errors = load_sources([p for p in paths if not is_package(p)])
    errors = [*errors, *run_errors]
    store = CaseStore(models, cache_mb * 2**20, packages)
    upload_root = Path(tempfile.mkdtemp(prefix="medseg-view-"))
    max_upload = int(max_upload_mb * 2**20)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        shutil.rmtree(upload_root, ignore_errors=True)  # uploads never outlive the server

    app = FastAPI(title="medseg-view", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store, app.state.errors, app.state.upload_root = store, errors, upload_root
    app.add_middleware(TrustedHostMiddleware,
                       allowed_hosts=allowed_hosts or ["127.0.0.1", "localhost", "[::1]", "::1"])

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(MedsegError)
    async def _medseg_error(request: Request, exc: MedsegError):
        return JSONResponse({"error": str(exc), "kind": exc.kind}, status_code=422)

    def model_or_404(mid: str) -> Model:
        try:
            return store.model(mid)
        except KeyError:
            raise HTTPException(404, f"no model {mid!r}") from None

    def view_or_404(mid: str, cid: str) -> CaseView:
        try:
            return store.case_view(mid, cid)
        except KeyError:
            raise HTTPException(404, f"no case {cid!r} in model {mid!r}") from None

    def array_response(request: Request, view: CaseView, name: str) -> Response:
        if name not in view.arrays:
            raise HTTPException(404, f"no array {name!r}")
        packed = view.arrays[name]
        data = packed.data
        headers = {"X-Dtype": packed.dtype, "X-Shape": ",".join(map(str, packed.shape)),
                   "Cache-Control": "private, max-age=600"}
        if packed.gzipped and "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
        elif packed.gzipped:  # a client without gzip gets the raw bytes
            data = zlib.decompress(data, 31)
        return Response(data, media_type="application/octet-stream", headers=headers)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return RedirectResponse("/static/favicon.svg")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models")
    def list_models():
        return {"models": [m.summary() for m in models], "clinical": clinical_db is not None,
                "packages": [p.summary() for p in packages],
                "errors": [{"source": e.source, "message": e.message} for e in errors]}

    @app.get("/api/leaderboard")
    def get_leaderboard():
        if not models:
            return {"rows": []}
        metrics = tuple(x for x in ("dice", "iou", "hd95", "nsd") if all(x in m.per_image for m in models))
        board = leaderboard({m.id: m.per_image for m in models}, {m.id: m.kind for m in models},
                            metrics=metrics or ("dice",), n_boot=n_boot).sort_values("dice", ascending=False)
        board.insert(0, "name", [store.model(i).name for i in board.index])
        return {"rows": _json_clean(board.rename_axis("id").reset_index()), "n_boot": n_boot}

    @app.get("/api/models/{mid}/cases")
    def list_cases(mid: str):
        m = model_or_404(mid)
        per_class = None
        if m.per_class is not None and "case_id" in m.per_class.columns:
            pc = m.per_class.copy()
            pc["case_id"] = pc["case_id"].astype(str)
            per_class = _json_clean(pc)
        return {"cases": _json_clean(m.per_image.rename_axis("case_id").reset_index()), "per_class": per_class}

    @app.get("/api/models/{mid}/curves")
    def curves(mid: str):
        m = model_or_404(mid)
        out: list[dict[str, object]] = []
        for csv in m.curves:
            try:
                df = pd.read_csv(csv)
            except (OSError, ValueError, pd.errors.ParserError) as exc:
                out.append({"file": str(csv), "error": f"{csv}: cannot read ({exc})"})
                continue
            cols = [c for c in ("epoch", "train/loss", "val/loss", "val/dice") if c in df.columns]
            rows = df[cols].groupby("epoch").last().reset_index() if "epoch" in cols else df[cols]
            out.append({"file": str(csv), "rows": _json_clean(rows)})
        return {"curves": out}

    @app.get("/api/models/{mid}/classes")
    def class_bars(mid: str, metric: str = "dice"):
        m = model_or_404(mid)
        if m.per_class is None or metric not in m.per_class.columns:
            return {"classes": [], "values": [], "metric": metric}
        names = list(dict.fromkeys(m.per_class["class"].astype(str)))
        means = m.per_class.assign(**{"class": m.per_class["class"].astype(str)}).groupby("class")[metric].mean()
        vals = [None if pd.isna(means.get(n)) else float(means[n]) for n in names]
        return {"classes": names, "values": vals, "metric": metric}

    @app.get("/api/models/{mid}/files/{rel:path}")
    def model_file(mid: str, rel: str):
        return FileResponse(safe_file(model_or_404(mid).folder, rel))

    @app.get("/api/models/{mid}/cases/{cid}/meta")
    def case_meta(mid: str, cid: str):
        return view_or_404(mid, cid).meta

    @app.get("/api/models/{mid}/cases/{cid}/array/{name}")
    def case_array(request: Request, mid: str, cid: str, name: str):
        return array_response(request, view_or_404(mid, cid), name)

    @app.get("/api/models/{mid}/cases/{cid}/clinical")
    def clinical(mid: str, cid: str, source: str = "gt"):
        if clinical_db is None:
            raise HTTPException(404, "no clinical database configured (start medseg-view with --clinical-db URL)")
        if source not in ("gt", "pred"):
            raise HTTPException(422, "source must be gt or pred")
        model_or_404(mid)
        try:
            return store.clinical(mid, cid, clinical_db, use_prediction=source == "pred")
        except KeyError:
            raise HTTPException(404, f"no case {cid!r} in model {mid!r}") from None

    @app.get("/api/compare/{a}/{b}")
    def compare(a: str, b: str, metric: str = "dice"):
        ma, mb = model_or_404(a), model_or_404(b)
        if metric not in ma.per_image or metric not in mb.per_image:
            raise HTTPException(422, f"metric {metric!r} is not in both models' per_image.csv")
        shared = ma.per_image.index.intersection(mb.per_image.index)
        if len(shared) == 0:
            return {"shared": 0, "sentence": f"{ma.name} and {mb.name} share no cases", "cases": []}
        c = paired_comparison(ma.per_image[metric], mb.per_image[metric], ma.name, mb.name, n_boot=n_boot)
        diff = (mb.per_image.loc[shared, metric] - ma.per_image.loc[shared, metric]).sort_values()
        cases = [{"case_id": str(k), "a": _none(ma.per_image.loc[k, metric]), "b": _none(mb.per_image.loc[k, metric]),
                  "diff": _none(v)} for k, v in diff.items()]
        return {"shared": int(len(shared)), "metric": metric, "sentence": c.sentence(metric.capitalize()),
                "diff": {"mean": _none(c.diff.mean), "low": _none(c.diff.low), "high": _none(c.diff.high)},
                "p_bootstrap": _none(c.p_bootstrap), "p_wilcoxon": _none(c.p_wilcoxon), "cases": cases}

    @app.post("/api/models/{mid}/predict")
    async def predict_upload(request: Request, mid: str, filename: str):
        """The raw file is the request body (``fetch(url, {method: "POST", body: file})``): it is
        streamed into a private temporary folder and refused as soon as it passes the size limit,
        so nothing larger than the limit is ever held or written."""
        m = model_or_404(mid)
        return await receive_upload(request, filename, lambda folder, token: store.predict_upload(m.id, folder, token))

    @app.post("/api/packages/{pid}/predict")
    async def predict_package_upload(request: Request, pid: str, filename: str):
        """As ``/api/models/{mid}/predict``, predicted by an exported package's networks."""
        if pid not in store.packages:
            raise HTTPException(404, f"no package {pid!r}")
        return await receive_upload(request, filename,
                                    lambda folder, token: store.predict_package_upload(pid, folder, token))

    async def receive_upload(request: Request, filename: str, predict) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload:
            raise HTTPException(413, f"upload larger than the limit of {max_upload_mb} MB (--max-upload-mb)")
        suffix = sniff_upload(b"", filename, check_magic=False)
        if suffix is None:
            raise HTTPException(415, f"{filename!r}: upload one of {', '.join(UPLOAD_SUFFIXES)}")
        token = secrets.token_hex(8)
        folder = Path(tempfile.mkdtemp(dir=upload_root))
        target = folder / f"upload{suffix}"  # the client's file name is never used as a path
        try:
            size, head = 0, b""
            with open(target, "wb") as fh:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_upload:
                        raise HTTPException(413, f"upload larger than the limit of {max_upload_mb} MB")
                    if len(head) < 512:
                        head += chunk[: 512 - len(head)]
                    fh.write(chunk)
            if size == 0:
                raise HTTPException(422, f"{filename!r}: empty upload")
            if sniff_upload(head, filename) is None:
                raise HTTPException(415, f"{filename!r}: the content is not a {suffix} file")
            view = await run_in_threadpool(predict, folder, token)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return {"token": token, "meta": view.meta}

    @app.get("/api/uploads/{token}/array/{name}")
    def upload_array(request: Request, token: str, name: str):
        view = store.upload_view(token)
        if view is None:
            raise HTTPException(404, "no such upload (expired from the cache: upload again)")
        return array_response(request, view, name)

    return app


def _none(x) -> float | None:
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None


__all__ = ["create_app", "safe_file", "sniff_upload", "SourceError"]
