"""The viewer's API without a browser: what it serves matches the runs, bad folders and bad requests
are refused, uploads are bounded, the case cache stays within its byte budget."""

from __future__ import annotations

import gzip
import io
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from medseg.apps.viewer import ByteLRU, create_app, pack_bits, unpack_bits
from medseg.metrics.overlap import overlap_metrics

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def client(viewer_runs):
    app = create_app([viewer_runs["hand_a"], viewer_runs["brats"]], max_upload_mb=1)
    with TestClient(app, base_url=BASE) as c:
        yield c


def arrays(client, mid, cid):
    meta = client.get(f"/api/models/{mid}/cases/{cid}/meta").json()
    out = {}
    for name in ("image", "pred", "gt", *(["roi"] if meta["has_roi"] else [])):
        r = client.get(f"/api/models/{mid}/cases/{cid}/array/{name}")
        assert r.status_code == 200, r.text
        shape = tuple(int(s) for s in r.headers["x-shape"].split(","))
        out[name] = np.frombuffer(r.content, dtype=r.headers["x-dtype"]).reshape(shape)
    return meta, out


def test_pack_bits_round_trip_for_29_overlapping_classes():
    rng = np.random.default_rng(0)
    masks = rng.random((29, 7, 5)) > 0.6
    words, dtype = pack_bits(masks)
    assert dtype == "uint32" and words.shape == (7, 5)
    assert np.array_equal(unpack_bits(words, 29), masks)
    assert pack_bits(masks[:3])[1] == "uint8" and pack_bits(masks[:12])[1] == "uint16"


def test_byte_lru_evicts_least_recent_and_stays_under_budget():
    cache = ByteLRU(100, size=len)
    cache.put("a", b"x" * 40)
    cache.put("b", b"x" * 40)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", b"x" * 40)
    assert "b" not in cache and "a" in cache and "c" in cache and cache.nbytes == 80
    assert cache.put("huge", b"x" * 500) == b"x" * 500 and "huge" not in cache and cache.nbytes <= 100


@pytest.mark.parametrize("run", ["hand_a", "brats"])
def test_served_prediction_reproduces_the_runs_dice(client, viewer_runs, run):
    """Image, ground truth and prediction come from the run's data, preprocessing and best
    checkpoint: their Dice equals what training wrote in per_image.csv."""
    mid = {"hand_a": "m0", "brats": "m1"}[run]
    per_image = pd.read_csv(viewer_runs[run] / "per_image.csv", index_col=0)
    cid = str(per_image.index[0])
    meta, a = arrays(client, mid, cid)
    k = len(meta["classes"])
    pred, gt = unpack_bits(a["pred"], k), unpack_bits(a["gt"], k)
    assert a["image"].shape == (meta["channels"], *meta["shape"]) and a["image"].dtype == np.uint8
    assert a["image"].max() > a["image"].min()
    roi = torch.from_numpy(a["roi"].astype(bool))[None] if "roi" in a else None
    assert (roi is not None) == (run == "brats")  # metrics inside the brain for BraTS
    dice = overlap_metrics(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None], roi=roi)["dice"][0].numpy()
    assert np.nanmean(dice) == pytest.approx(per_image.loc[cid, "dice"], abs=2e-4)
    assert meta["gt_pixels"] == [int(n) for n in gt.reshape(k, -1).sum(1)]
    if run == "brats":
        assert meta["ndim"] == 3 and meta["classes"] == ["whole_tumour", "tumour_core", "enhancing_tumour"]
        union = gt.any(0)
        assert meta["largest_slice"][0] == int(union.sum((1, 2)).argmax())
        assert meta["channel_names"] == ["flair", "t1", "t1ce", "t2"]


def test_models_leaderboard_compare_curves(viewer_runs):
    app = create_app([viewer_runs["hand_a"], viewer_runs["hand_b"]])
    with TestClient(app, base_url=BASE) as c:
        models = c.get("/api/models").json()["models"]
        assert [m["name"] for m in models] == ["hand_a", "hand_b"] and all(m["can_predict"] for m in models)
        rows = c.get("/api/leaderboard").json()["rows"]
        assert {r["name"] for r in rows} == {"hand_a", "hand_b"}
        for r in rows:
            assert r["dice_ci_low"] <= r["dice"] <= r["dice_ci_high"]
        cmp = c.get("/api/compare/m0/m1").json()
        a = pd.read_csv(viewer_runs["hand_a"] / "per_image.csv", index_col=0)["dice"]
        b = pd.read_csv(viewer_runs["hand_b"] / "per_image.csv", index_col=0)["dice"]
        assert cmp["shared"] == len(a) and cmp["diff"]["mean"] == pytest.approx((b - a).mean(), abs=1e-9)
        assert [r["diff"] for r in cmp["cases"]] == sorted(r["diff"] for r in cmp["cases"])
        curves = c.get("/api/models/m0/curves").json()["curves"]
        assert [r["epoch"] for r in curves[0]["rows"]] == [0, 1]
        bars = c.get("/api/models/m0/classes").json()
        assert len(bars["classes"]) == 29 and bars["classes"][0] == "finger-1"
        cases = c.get("/api/models/m0/cases").json()
        assert len(cases["per_class"]) == 29 * len(cases["cases"])


def test_corrupt_and_half_written_folders_are_shown_while_others_are_served(viewer_runs, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(viewer_runs["hand_a"], half)
    (half / "per_image.csv").write_bytes(b"case_id,dice,iou\nID00")  # a half-written table
    nodice = tmp_path / "nodice"
    nodice.mkdir()
    (nodice / "per_image.csv").write_text("case_id,iou\na,0.5\n")
    notrun = tmp_path / "empty"
    notrun.mkdir()
    broken_cfg = tmp_path / "broken_cfg"
    shutil.copytree(viewer_runs["hand_a"], broken_cfg)
    (broken_cfg / ".hydra" / "config.yaml").write_text("data: [unclosed\n")
    app = create_app([half, nodice, notrun, viewer_runs["brats"], broken_cfg])
    with TestClient(app, base_url=BASE) as c:
        body = c.get("/api/models").json()
        errors = {e["source"]: e["message"] for e in body["errors"]}
        assert str(nodice) in errors and "no 'dice' column" in errors[str(nodice)]
        assert str(notrun) in errors and "no per_image.csv" in errors[str(notrun)]
        assert str(half) in errors and "half-written" in errors[str(half)]
        names = {m["name"]: m["id"] for m in body["models"]}
        assert "brats" in names and "broken_cfg" in names
        # the broken config fails for its own cases only, with a message naming the file
        cid = c.get(f"/api/models/{names['broken_cfg']}/cases").json()["cases"][0]["case_id"]
        r = c.get(f"/api/models/{names['broken_cfg']}/cases/{cid}/meta")
        assert r.status_code == 422 and "broken_cfg" in r.json()["error"] and "config" in r.json()["error"]
        cid = c.get(f"/api/models/{names['brats']}/cases").json()["cases"][0]["case_id"]
        assert c.get(f"/api/models/{names['brats']}/cases/{cid}/meta").status_code == 200


TRAVERSALS = ["../../../../etc/passwd", "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "..%2f..%2f..%2f..%2fetc%2fpasswd",
              "%252e%252e%252f%252e%252e%252fetc%252fpasswd", "..%5c..%5c..%5cetc%5cpasswd", "%2fetc%2fpasswd",
              "overlays/..%2f..%2f..%2f..%2fetc%2fpasswd", "..%00/etc/passwd", "/etc/passwd"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(client, path):
    for url in (f"/api/models/m0/files/{path}", f"/static/{path}"):
        r = client.get(url)
        assert r.status_code in (400, 404), (url, r.status_code)
        assert b"root:" not in r.content


def test_symlinks_out_of_the_folder_are_refused_inside_ones_served(viewer_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(viewer_runs["hand_a"], run, symlinks=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret outside the run folder")
    os.symlink(secret, run / "leak.png")
    os.symlink(tmp_path, run / "outside")
    os.symlink(run / "loss_curve.png", run / "inside.png")
    with TestClient(create_app([run]), base_url=BASE) as c:
        assert c.get("/api/models/m0/files/leak.png").status_code == 404
        assert c.get("/api/models/m0/files/outside/secret.png").status_code == 404
        ok = c.get("/api/models/m0/files/loss_curve.png")
        assert ok.status_code == 200 and ok.content[:4] == b"\x89PNG"
        assert c.get("/api/models/m0/files/inside.png").content == ok.content
        assert c.get("/api/models/m0/files/.hydra/config.yaml").status_code == 404  # not a served type
        assert c.get("/api/models/m0/files/checkpoints/last.ckpt").status_code == 404


def test_host_header_and_security_headers(client):
    r = client.get("/api/models")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert client.get("/api/models", headers={"host": "evil.example"}).status_code == 400  # DNS rebinding
    index = client.get("/")
    assert index.status_code == 200 and b"/static/app.js" in index.content
    assert b"http://" not in index.content and b"https://" not in index.content
    js = client.get("/static/app.js").content
    assert b"https://" not in js and b"http://" not in js  # nothing fetched from elsewhere


def _png_bytes(path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_predicts_with_the_run_and_is_bounded(client, viewer_runs):
    app_tmp = client.app.state.upload_root
    src = sorted((viewer_runs["data"] / "synthetic" / "handbone").rglob("*.png"))[0]
    r = client.post("/api/models/m0/predict?filename=hand.png", content=_png_bytes(src))
    assert r.status_code == 200, r.text
    meta = r.json()["meta"]
    assert meta["shape"] == list(np.asarray(Image.open(src)).shape[:2]) and meta["has_gt"] is False
    pred = client.get(f"/api/uploads/{r.json()['token']}/array/pred")
    words = np.frombuffer(pred.content, dtype=pred.headers["x-dtype"]).reshape(meta["shape"])
    assert meta["pred_pixels"] == [int(n) for n in unpack_bits(words, 29).reshape(29, -1).sum(1)]
    assert list(app_tmp.iterdir()) == []  # the upload is deleted once read
    # size, type and content checks
    big = client.post("/api/models/m0/predict?filename=big.png", content=b"\x89PNG\r\n\x1a\n" + b"0" * (2 << 20))
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    assert client.post("/api/models/m0/predict?filename=x.exe", content=b"MZ...").status_code == 415
    fake = client.post("/api/models/m0/predict?filename=fake.png", content=b"not a png at all")
    assert fake.status_code == 415
    trunc = client.post("/api/models/m0/predict?filename=t.png", content=_png_bytes(src)[:80])
    assert trunc.status_code == 422 and "cannot read image" in trunc.json()["error"]
    assert client.post("/api/models/m0/predict?filename=../../evil.png", content=_png_bytes(src)).status_code == 200
    assert not (app_tmp.parent / "evil.png").exists() and list(app_tmp.iterdir()) == []


def test_upload_nifti_volume_to_the_3d_run(client, viewer_runs, tmp_path):
    case = sorted((viewer_runs["data"] / "synthetic" / "BraTS2020").rglob("BraTS20_Training_001"))[0]
    vols = [np.asarray(nib.load(str(case / f"{case.name}_{m}.nii.gz")).dataobj, dtype=np.float32)
            for m in ("flair", "t1", "t1ce", "t2")]
    img = nib.Nifti1Image(np.stack(vols, -1), np.eye(4))
    path = tmp_path / "vol.nii.gz"
    nib.save(img, str(path))
    r = client.post("/api/models/m1/predict?filename=vol.nii.gz", content=path.read_bytes())
    assert r.status_code == 200, r.text
    meta = r.json()["meta"]
    assert meta["ndim"] == 3 and meta["channels"] == 4 and "largest_slice" in meta
    two_d = client.post("/api/models/m1/predict?filename=a.png", content=gzip.compress(b"x"))
    assert two_d.status_code == 415  # gzip bytes named .png


def test_cache_stays_within_budget_while_browsing(viewer_runs):
    app = create_app([viewer_runs["hand_a"], viewer_runs["hand_b"]], cache_mb=16)
    store = app.state.store
    store.cache.max_bytes = 6000  # a few 64x64 cases' worth
    sizes = []
    with TestClient(app, base_url=BASE) as c:
        for mid in ("m0", "m1"):
            for cid in c.get(f"/api/models/{mid}/cases").json()["cases"]:
                assert c.get(f"/api/models/{mid}/cases/{cid['case_id']}/meta").status_code == 200
                sizes.append(store.cache.nbytes)
    assert max(sizes) <= 6000 and len(store.cache) < len(sizes)
    assert not app.state.upload_root.exists()  # the upload folder goes with the server


def test_hydra_references_of_the_saved_config_are_resolved(viewer_runs, tmp_path):
    """A run's config refers to ``${hydra:runtime.cwd}`` (paths.root_dir without MEDSEG_ROOT); the
    viewer is not a Hydra app and answers them from the run's own ``.hydra/hydra.yaml``."""
    from omegaconf import OmegaConf

    run = tmp_path / "run"
    shutil.copytree(viewer_runs["hand_a"], run)
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    cfg.paths.root_dir = "${oc.env:MEDSEG_VIEWER_TEST_UNSET,${hydra:runtime.cwd}}"
    cfg.data.synth_parent = "${paths.root_dir}/data"
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    assert "${hydra:runtime.cwd}" in (run / ".hydra" / "config.yaml").read_text()
    with TestClient(create_app([run]), base_url=BASE) as c:
        cid = c.get("/api/models/m0/cases").json()["cases"][0]["case_id"]
        r = c.get(f"/api/models/m0/cases/{cid}/meta")
        assert r.status_code == 200, r.text


def test_clinical_view_calls_the_clinical_flow(viewer_runs, tmp_path, client):
    from medseg.apps.clinical import db
    from medseg.apps.clinical.flow import diagnose

    cid = str(pd.read_csv(viewer_runs["brats"] / "per_image.csv", index_col=0).index[0])
    demo = Path(shutil.copytree(db.DEMO_DIR, tmp_path / "demo"))
    patients = pd.read_csv(demo / "patients.csv")
    if cid not in set(patients["case_id"]):  # link a patient to the run's test case
        patients.loc[len(patients)] = ["VIEW-001", 50, "F", cid]
        patients.to_csv(demo / "patients.csv", index=False)
    url = f"sqlite:///{tmp_path / 'clinical.db'}"
    engine = db.connect(url)
    db.load_csv_dir(engine, demo)
    engine.dispose()
    assert client.get(f"/api/models/m1/cases/{cid}/clinical").status_code == 404  # no database configured
    with TestClient(create_app([viewer_runs["brats"]], clinical_db=url), base_url=BASE) as c:
        assert c.get("/api/models").json()["clinical"] is True
        r = c.get(f"/api/models/m0/cases/{cid}/clinical?source=gt")
        assert r.status_code == 200, r.text
        body = r.json()
        case_dir = next((viewer_runs["data"] / "synthetic" / "BraTS2020").rglob(cid))
        direct = diagnose(case_dir=case_dir, db_url=url)
        assert body["hemisphere"] == direct.localisation.hemisphere
        assert body["crosscheck"]["agreement"] == pytest.approx(direct.crosscheck.agreement)
        assert [x["key"] for x in body["crosscheck"]["recommendations"]] == [
            x.key for x in direct.crosscheck.recommendations]
        pred = c.get(f"/api/models/m0/cases/{cid}/clinical?source=pred")
        assert pred.status_code == 200 or (pred.status_code == 422 and pred.json()["error"])


def test_kfold_folder_models_map_to_their_fold_runs(tmp_path):
    """A k-fold folder: each fold model predicts with its own fold run, the fold ensemble with all
    folds (the mean, as medseg-predict does); an OOF folder with its fold run."""
    from medseg.apps.viewer.sources import load_sources, run_dirs_for

    kf = tmp_path / "cv"
    table = "case_id,dice\na,0.5\nb,0.7\n"
    for k in range(2):
        fold = kf / f"fold_{k}"
        (fold / ".hydra").mkdir(parents=True)
        (fold / ".hydra" / "config.yaml").write_text("seed: 0\n")
        (fold / "checkpoints").mkdir()
        (fold / "results.json").write_text("{}")
        (fold / "oof").mkdir()
        (fold / "oof" / "per_image.csv").write_text(table)
        (kf / "ensemble" / "models" / f"cv_fold_{k}").mkdir(parents=True)
        (kf / "ensemble" / "models" / f"cv_fold_{k}" / "per_image.csv").write_text(table)
    (kf / "ensemble" / "models" / "cv").mkdir()
    (kf / "ensemble" / "models" / "cv" / "per_image.csv").write_text(table)
    (kf / "ensemble" / "leaderboard.csv").write_text("model,kind\ncv,2-fold ensemble\ncv/fold_0,fold\ncv/fold_1,fold\n")
    models, errors = load_sources([kf])
    assert errors == []
    runs = {m.name: [p.name for p in m.run_dirs] for m in models}
    assert runs == {"cv": ["fold_0", "fold_1"], "cv_fold_0": ["fold_0"], "cv_fold_1": ["fold_1"]}
    assert run_dirs_for(kf, kf / "fold_1" / "oof", "oof") == [kf / "fold_1"]
    assert run_dirs_for(tmp_path, tmp_path / "elsewhere", "x") == []
