"""What the viewer shows without predicting: the masks every evaluation saves
(``predictions/<case_id>.npz``), and exported packages for "Try it"."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from medseg.apps.viewer import cases as viewer_cases
from medseg.apps.viewer import create_app, unpack_bits
from medseg.errors import DataError
from medseg.evaluation import load_prediction, save_prediction
from medseg.metrics.overlap import overlap_metrics
from tests.conftest import compose_cfg, run_cli

BASE = "http://127.0.0.1"


def _served(c: TestClient, mid: str, cid: str) -> tuple[dict, np.ndarray, np.ndarray]:
    meta = c.get(f"/api/models/{mid}/cases/{cid}/meta")
    assert meta.status_code == 200, meta.text
    meta = meta.json()
    out = []
    for name in ("pred", "gt"):
        r = c.get(f"/api/models/{mid}/cases/{cid}/array/{name}")
        words = np.frombuffer(r.content, dtype=r.headers["x-dtype"]).reshape(meta["shape"])
        out.append(unpack_bits(words, len(meta["classes"])))
    return meta, out[0], out[1]


def test_saved_prediction_round_trip_and_damage(tmp_path):
    rng = np.random.default_rng(1)
    mask = rng.random((29, 13, 11)) > 0.7
    path = save_prediction(tmp_path / "c.npz", torch.from_numpy(mask), 0.4)
    assert path == tmp_path / "c.npz" and [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no tmp file left
    back, thr = load_prediction(path)
    assert back.shape == mask.shape and np.array_equal(back, mask) and thr == pytest.approx(0.4)
    assert load_prediction(save_prediction(tmp_path / "m.npz", mask[:3]))[1] is None  # multi-class: no threshold
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match="c.npz"):
        load_prediction(path)


def test_viewer_serves_the_evaluated_masks_without_building_the_model(viewer_runs, monkeypatch, tmp_path):
    """The training run's test evaluation saved its masks; the viewer serves them without building the
    network or reading the checkpoint, and they are the masks the evaluation scored."""
    run = viewer_runs["hand_a"]
    per_image = pd.read_csv(run / "per_image.csv", index_col=0)
    cid = str(per_image.index[0])
    files = sorted(p.name for p in (run / "predictions").iterdir())
    assert files == sorted(f"{c}.npz" for c in per_image.index.astype(str))
    saved, thr = load_prediction(run / "predictions" / f"{cid}.npz")
    assert saved.shape[0] == 29 and thr == pytest.approx(0.5)

    def refuse(*a, **k):
        raise AssertionError("the viewer built the model although the prediction was saved")

    with monkeypatch.context() as mp:
        mp.setattr(viewer_cases, "build_module", refuse)
        mp.setattr(viewer_cases, "load_weights", refuse)
        mp.setattr(viewer_cases.RunAssets, "module", refuse)
        with TestClient(create_app([run]), base_url=BASE) as c:
            meta, pred, gt = _served(c, "m0", cid)
    assert meta["prediction_source"] == "saved prediction"
    assert np.array_equal(pred, saved)
    dice = overlap_metrics(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None])["dice"][0].numpy()
    assert np.nanmean(dice) == pytest.approx(per_image.loc[cid, "dice"], abs=2e-4)

    # the same run without its saved masks: predicted from the checkpoint, the same mask
    copy = tmp_path / "hand_copy"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "predictions")
    with TestClient(create_app([copy]), base_url=BASE) as c:
        meta2, pred2, _ = _served(c, "m0", cid)
    assert meta2["prediction_source"].startswith("best checkpoint") and np.array_equal(pred2, saved)

    # a damaged file is not trusted: the case is predicted instead
    (copy / "predictions").mkdir()
    (copy / "predictions" / f"{cid}.npz").write_bytes(b"PK\x03\x04 broken")
    with TestClient(create_app([copy]), base_url=BASE) as c:
        meta3, pred3, _ = _served(c, "m0", cid)
    assert meta3["prediction_source"].startswith("best checkpoint") and np.array_equal(pred3, saved)


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_medseg_eval_save_predictions_key(viewer_runs, tmp_path):
    run = viewer_runs["hand_a"]
    on, off = tmp_path / "on", tmp_path / "off"
    for out, value in ((on, "true"), (off, "false")):
        proc = run_cli("medseg.cli.evaluate", [f"run_dir={run}", f"hydra.run.dir={out}", f"save_predictions={value}",
                                           "metrics=[]"], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    per_image = pd.read_csv(on / "per_image.csv", index_col=0)
    assert sorted(p.stem for p in (on / "predictions").iterdir()) == sorted(per_image.index.astype(str))
    assert not (off / "predictions").exists() and (off / "per_image.csv").is_file()
    for cid in per_image.index.astype(str):  # the same checkpoint and data as training's evaluation
        assert np.array_equal(load_prediction(on / "predictions" / f"{cid}.npz")[0],
                              load_prediction(run / "predictions" / f"{cid}.npz")[0])


# --------------------------------------------------------------------------- exported packages
@pytest.fixture(scope="module")
def hand_package(viewer_runs, tmp_path_factory) -> Path:
    from medseg.pipelines.export import export_run

    out = tmp_path_factory.mktemp("viewer_pkg") / "hand_pkg"
    return export_run(compose_cfg("export", [f"run_dir={viewer_runs['hand_a']}", "zip=true"], out.parent / "log"), out)


def _png(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).save(buf, format="PNG")
    return buf.getvalue()


def test_exported_package_predicts_uploads_and_a_tampered_one_is_refused(viewer_runs, hand_package, tmp_path):
    from medseg.export.package import load_package
    from medseg.pipelines.predict import predict_package_input

    tampered = tmp_path / "tampered"
    shutil.copytree(hand_package, tampered)
    manifest = json.loads((tampered / "package.json").read_text())
    onnx = tampered / manifest["members"][0]["files"]["onnx"]
    onnx.write_bytes(onnx.read_bytes()[:-16] + b"\x00" * 16)
    zipped = hand_package.parent / f"{hand_package.name}.zip"
    assert zipped.is_file()
    app = create_app([viewer_runs["hand_a"], hand_package, tampered, zipped])
    src = sorted((viewer_runs["data"] / "synthetic" / "handbone").rglob("*.png"))[0]
    with TestClient(app, base_url=BASE) as c:
        listing = c.get("/api/models").json()
        assert [m["id"] for m in listing["models"]] == ["m0"]
        assert [p["id"] for p in listing["packages"]] == ["p0", "p1"]  # the folder and the zip
        assert listing["packages"][0]["kind"] == "package" and len(listing["packages"][0]["classes"]) == 29
        bad = [e for e in listing["errors"] if e["source"] == str(tampered.resolve())]
        assert len(bad) == 1 and "checksum mismatch" in bad[0]["message"] and onnx.name in bad[0]["message"]
        expected = predict_package_input(load_package(hand_package), src)[1].numpy()
        for pid in ("p0", "p1"):
            r = c.post(f"/api/packages/{pid}/predict?filename=hand.png", content=_png(src))
            assert r.status_code == 200, r.text
            meta = r.json()["meta"]
            assert meta["prediction_source"].startswith("package") and meta["has_gt"] is False
            arr = c.get(f"/api/uploads/{r.json()['token']}/array/pred")
            words = np.frombuffer(arr.content, dtype=arr.headers["x-dtype"]).reshape(meta["shape"])
            assert np.array_equal(unpack_bits(words, 29), expected)
            assert expected.any() or meta["pred_pixels"] == [0] * 29
        # the package's prediction agrees with the run's own prediction of the same upload
        run_r = c.post("/api/models/m0/predict?filename=hand.png", content=_png(src)).json()
        run_arr = c.get(f"/api/uploads/{run_r['token']}/array/pred")
        run_pred = unpack_bits(np.frombuffer(run_arr.content, dtype=run_arr.headers["x-dtype"])
                               .reshape(run_r["meta"]["shape"]), 29)
        assert (run_pred == expected).mean() > 0.999
        assert c.post("/api/packages/p9/predict?filename=hand.png", content=_png(src)).status_code == 404
        assert c.post("/api/packages/p0/predict?filename=x.exe", content=b"MZ").status_code == 415
        trunc = c.post("/api/packages/p0/predict?filename=t.png", content=_png(src)[:80])
        assert trunc.status_code == 422 and "cannot read image" in trunc.json()["error"]
        assert list(app.state.upload_root.iterdir()) == []
