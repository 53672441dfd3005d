"""The whole flow on the coarse geometric map (tiny ellipsoid heads, no registration): synthetic case + demo
database -> localisation, cross-check, hospitals, report. The MNI atlas with registration is tested in
tests/apps/clinical/test_mni.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medseg.apps.clinical import ClinicalError, db
from medseg.apps.clinical.flow import diagnose as _diagnose
from medseg.apps.clinical.regions import CoarseAtlas

REPO = Path(__file__).resolve().parents[3]


def diagnose(**kw):
    """The flow on the coarse map unless a test gives another atlas."""
    kw.setdefault("atlas", CoarseAtlas())
    return _diagnose(**kw)


@pytest.fixture
def demo_db(db_url):
    engine = db.connect(db_url)
    db.load_csv_dir(engine, db.DEMO_DIR)
    engine.dispose()
    return db_url


def test_left_frontal_case_confirms_region_and_recommends_its_hospital(demo_db, brats_case, tmp_path, caplog):
    case = brats_case(centre_mm=(-35.0, 40.0, 30.0), orientation="LPS")
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        result = diagnose(case_dir=case, patient_id="DEMO-001", db_url=demo_db, out_dir=tmp_path / "out")
    loc, check = result.localisation, result.crosscheck
    assert (loc.found[0].side, loc.found[0].structure, loc.hemisphere) == ("left", "frontal lobe", "left")
    confirmed = {r.name: r.reason for r in check.regions}
    assert confirmed["left frontal lobe"] == "both"          # aphasia + right hemiparesis point there
    assert confirmed["left temporal lobe"] == "symptoms only"
    assert check.symptom_support == 1.0 and check.agreement > 0.9
    hospitals = [r for r in check.recommendations if r.kind == "hospital"]
    assert hospitals[0].key == "H-NBR" and "left frontal lobe" in hospitals[0].structures
    # the report: both formats, slices embedded in the HTML, the disclaimer, no patient id by default
    md = result.report_md.read_text()
    page = result.report_html.read_text()
    assert "Research software, not a diagnosis" in md and "Research software, not a diagnosis" in page
    assert "data:image/png;base64," in page and (tmp_path / "out" / "slices.png").stat().st_size > 1000
    assert "| left frontal lobe | confirmed: image and symptoms |" in md and "Northbridge" in page
    assert "| left temporal lobe | 0 | aphasia |" in md   # under "suggested by symptoms, not seen in the image"
    assert "Suggested by symptoms, not seen in the image" in md and "coarse geometric SRI24 map" in md
    assert "DEMO-001" not in md + page + (tmp_path / "out" / "diagnosis.json").read_text()
    # identifiers never reach the logs: medseg's, and SQLAlchemy's statement log with its bound values
    assert any(r.name.startswith("sqlalchemy.engine") and "patients" in r.getMessage() for r in caplog.records)
    assert any(r.name.startswith("medseg.apps.clinical") for r in caplog.records)
    assert not any("DEMO-001" in r.getMessage() for r in caplog.records)


def test_symptoms_elsewhere_give_zero_agreement_and_image_led_recommendation(demo_db, brats_case):
    case = brats_case(centre_mm=(25.0, -64.0, 12.0), orientation="RAS")  # right occipital
    result = diagnose(case_dir=case, patient_id="DEMO-001", db_url=demo_db)
    check = result.crosscheck
    reasons = {r.name: r.reason for r in check.regions}
    assert reasons["right occipital lobe"] == "image only"
    assert reasons["left frontal lobe"] == "symptoms only"
    assert check.agreement == 0.0
    assert [r.key for r in check.recommendations if r.kind == "hospital"][0] == "H-LKS"
    assert result.report_md is None  # no out_dir: nothing written


def test_unknown_symptom_is_reported_not_fatal(demo_db, brats_case, tmp_path):
    # DEMO-003: left visual field loss (-> right occipital) and headache (not in the knowledge table)
    case = brats_case(case_id="BraTS20_Training_003", centre_mm=(25.0, -64.0, 12.0))
    result = diagnose(case_dir=case, db_url=demo_db, out_dir=tmp_path, symptoms=["tingling:left"])
    check = result.crosscheck
    assert check.unknown_symptoms == ["headache", "tingling"]
    assert any("unknown symptom 'headache'" in m for m in check.messages)
    assert {r.name: r.reason for r in check.regions}["right occipital lobe"] == "both"
    assert check.symptom_support == 1.0  # only known symptoms count
    assert "unknown symptom 'tingling'" in result.report_md.read_text()


def test_segmentation_file_alone_finds_the_patient_by_case_id(demo_db, brats_case, tmp_path):
    # DEMO-004 (case BraTS20_Training_004) reports left-sided ataxia: ipsilateral, the left cerebellum
    case = brats_case(case_id="BraTS20_Training_004", centre_mm=(-30.0, -56.0, -48.0))
    result = diagnose(seg=case / "BraTS20_Training_004_seg.nii.gz", db_url=demo_db, out_dir=tmp_path / "out")
    assert result.patient.patient_id == "DEMO-004"
    reasons = {r.name: r.reason for r in result.crosscheck.regions}
    assert reasons["left cerebellum"] == "both"
    ataxia = next(f for f in result.crosscheck.symptoms if f.symptom == "ataxia")
    assert ataxia.regions == ["left cerebellum"] and ataxia.explained
    assert reasons["right cerebellum"] == "symptoms only"  # dysarthria points to both sides
    assert result.crosscheck.recommendations[0].key == "H-HRB"
    assert result.report_html.is_file()


def test_clear_errors_for_missing_patient_empty_tumour_and_missing_segmentation(demo_db, brats_case):
    case = brats_case()
    with pytest.raises(ClinicalError, match="'NOBODY' not found"):
        diagnose(case_dir=case, patient_id="NOBODY", db_url=demo_db)
    with pytest.raises(ClinicalError, match="none linked to case"):
        diagnose(case_dir=brats_case(case_id="Unlinked_007"), db_url=demo_db)
    empty = brats_case(case_id="BraTS20_Training_002", empty=True)
    with pytest.raises(ClinicalError, match="contains no tumour"):
        diagnose(case_dir=empty, db_url=demo_db)
    unlabelled = brats_case(case_id="BraTS20_Training_004", with_seg=False)
    with pytest.raises(ClinicalError, match="no segmentation file.*run_dir"):
        diagnose(case_dir=unlabelled, db_url=demo_db)
    with pytest.raises(ClinicalError, match="unknown symptom|side after ':'"):
        diagnose(case_dir=case, patient_id="DEMO-001", db_url=demo_db, symptoms=["ataxia:up"])


def test_tumour_outside_the_map_falls_back_to_symptoms(demo_db, brats_case):
    case = brats_case(centre_mm=(0.0, 105.0, 0.0), radius_vox=2.0)  # in front of the brain ellipsoid
    result = diagnose(case_dir=case, patient_id="DEMO-001", db_url=demo_db)
    assert result.localisation.found == [] and result.localisation.outside_fraction == 1.0
    check = result.crosscheck
    assert any("no region of the map" in m for m in check.messages)
    assert {r.reason for r in check.regions} == {"symptoms only"} and check.agreement == 0.0
    assert not any(r.confirmed for r in check.regions)
    assert check.recommendations == []  # symptoms alone recommend nobody


def test_missing_modality_with_a_segmentation_still_reports(demo_db, brats_case, tmp_path, caplog):
    case = brats_case(modalities=("t1", "t1ce", "t2"))
    with caplog.at_level(logging.WARNING):
        result = diagnose(case_dir=case, patient_id="DEMO-001", db_url=demo_db, out_dir=tmp_path)
    assert "missing modality flair" in caplog.text
    assert result.report_html.is_file() and result.localisation.found[0].name == "left frontal lobe"


# ------------------------------------------------------------------------ segmenting with a run
FAKE_MODULE = '''
from dataclasses import replace

import numpy as np


class FakeBratsReader:
    task = "multilabel"
    class_names = ("WT", "TC", "ET")


class FakeCrop:
    """Crops like medseg.data.preprocess.CropToForeground and records the box the same way."""

    def __call__(self, case):
        box = [(2, n - 3) for n in case.image.shape[1:]]
        sl = tuple(slice(a, b) for a, b in box)
        meta = dict(case.meta, crop_bbox=[list(b) for b in box], original_shape=list(case.image.shape[1:]))
        return replace(case, image=case.image[(slice(None),) + sl], roi=case.roi[sl], meta=meta)
'''


def _fake_run(tmp_path: Path, monkeypatch, reader: dict, preprocess: list, flair: int, t1ce: int, n_in: int) -> Path:
    """A medseg run folder whose 'trained' network is a 1x1x1 convolution thresholding FLAIR (whole
    tumour) and T1ce (core, enhancing): the synthetic tumour is bright there, so the answer is known."""
    import torch
    from omegaconf import OmegaConf

    from medseg.pipelines.build import build_module

    (tmp_path / "mods").mkdir(exist_ok=True)
    (tmp_path / "mods" / "fake_brats_module.py").write_text(FAKE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    run = tmp_path / f"run_{n_in}"
    cfg = OmegaConf.create({
        "model": {"_target_": "torch.nn.Conv3d", "kernel_size": 1},
        "loss": {"_target_": "torch.nn.BCEWithLogitsLoss"},
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True},
        "scheduler": None, "monitor": "val/dice",
        "inference": {"_target_": "medseg.inference.inferers.PadToMultipleInferer"},
        "data": {"reader": reader, "preprocess": preprocess},
    })
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    from types import SimpleNamespace

    module = build_module(cfg, SimpleNamespace(task="multilabel", class_names=["a", "b", "c"], in_channels=n_in))
    with torch.no_grad():
        w = torch.zeros(3, n_in, 1, 1, 1)
        w[0, flair] = 0.01    # WT: flair above 750
        w[1, t1ce] = 0.01     # TC ~ ET: t1ce above 1100
        w[2, t1ce] = 0.01
        module.net.weight.copy_(w)
        module.net.bias.copy_(torch.tensor([-7.5, -11.0, -11.0]))
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": module.state_dict()}, run / "checkpoints" / "epoch=0-step=1.ckpt")
    return run


RUNS = {
    # a reader class telling task and classes, all four modalities, no preprocessing
    "reader_class": (dict(reader={"_target_": "fake_brats_module.FakeBratsReader", "_partial_": True},
                          preprocess=[], flair=0, t1ce=2, n_in=4)),
    # the BraTS reader's config (label_mode, two modalities in the run's order) and a crop to undo
    "brats_config": (dict(reader={"_target_": "medseg.data.formats.brats.BratsReader", "_partial_": True,
                                  "modalities": ["t1ce", "flair"], "label_mode": "regions"},
                          preprocess=[{"_target_": "fake_brats_module.FakeCrop"}], flair=1, t1ce=0, n_in=2)),
}


@pytest.mark.parametrize("kind", sorted(RUNS))
def test_segmenting_with_a_run_localises_the_tumour(demo_db, brats_case, tmp_path, monkeypatch, kind):
    import nibabel as nib

    run = _fake_run(tmp_path, monkeypatch, **RUNS[kind])
    case = brats_case(case_id="BraTS20_Training_002", centre_mm=(46.0, 0.0, -20.0), orientation="RAS", with_seg=False)
    result = diagnose(case_dir=case, run_dir=run, patient_id="DEMO-002", db_url=demo_db, device="cpu")
    assert "model of run" in result.source
    top = result.localisation.found[0]
    assert (top.side, top.structure) == ("right", "temporal lobe")
    assert {r.name: r.reason for r in result.crosscheck.regions}["right temporal lobe"] == "both"  # seizures, memory
    # the model's whole tumour is the written tumour (oedema included), on the case grid
    seg_case = brats_case(case_id="ref", centre_mm=(46.0, 0.0, -20.0), orientation="RAS")
    seg = np.asarray(nib.load(seg_case / "ref_seg.nii.gz").dataobj)
    assert result.localisation.volumes_cm3["WT"] == pytest.approx((seg > 0).sum() * 64 / 1000)
    assert result.localisation.volumes_cm3["ET"] == pytest.approx((seg == 4).sum() * 64 / 1000)
    # a case without one of the modalities the model needs
    (case / f"{case.name}_t1ce.nii.gz").unlink()
    with pytest.raises(ClinicalError, match="missing modality t1ce.*BraTS20_Training_002_t1ce.nii.gz"):
        diagnose(case_dir=case, run_dir=run, patient_id="DEMO-002", db_url=demo_db)


@pytest.mark.slow  # 8-20 s on the shared 2-core machine (MONAI import + 3D forward passes)
def test_segment_with_a_real_3d_network_returns_maps_on_the_case_grid(brats_case, tmp_path):
    """An (untrained) MONAI BasicUNet taking spatial_dims, as 3D runs configure it: the maps come back on
    the case grid whatever padding the predictor added."""
    import torch
    from omegaconf import OmegaConf

    from medseg.apps.clinical.segment import segment_with_run
    from medseg.pipelines.build import build_module

    cfg = OmegaConf.create({
        "model": {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 3, "features": [4, 4, 8, 8, 8, 4]},
        "loss": {"_target_": "torch.nn.BCEWithLogitsLoss"},
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}, "scheduler": None, "monitor": "val/dice",
        "inference": {"_target_": "monai.inferers.SlidingWindowInferer", "mode": "gaussian",
                      "roi_size": [48, 48, 32], "sw_batch_size": 4, "overlap": 0.0},
        "data": {"reader": {"_target_": "medseg.data.formats.brats.BratsReader", "label_mode": "labels"},
                 "preprocess": [{"_target_": "medseg.data.preprocess.ZScore"}]},
    })
    run = tmp_path / "run3d"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    from medseg.apps.clinical.segment import _run_spec

    module = build_module(cfg, _run_spec(cfg, 4, None, None))
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": module.state_dict()}, run / "checkpoints" / "last.ckpt")
    case = brats_case()
    maps, affine = segment_with_run(run, case, ckpt="last", device="cpu")
    assert set(maps) == {"WT", "TC", "ET"}
    assert all(m.shape == (60, 60, 39) and m.dtype == bool for m in maps.values())
    assert not (maps["ET"] & ~maps["TC"]).any() and not (maps["TC"] & ~maps["WT"]).any()  # nested regions
    assert np.allclose(affine, np.asarray(__import__("nibabel").load(case / f"{case.name}_seg.nii.gz").affine))


# ------------------------------------------------------------------------------------ CLI
def _cli(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", MEDSEG_ROOT=str(cwd),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("MEDSEG_DB_URL", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_cli_loads_demo_and_diagnoses_with_clear_errors(tmp_path):
    from tests.apps.clinical.clinical_synth import write_case

    case = write_case(tmp_path / "BraTS", centre_mm=(-35.0, 40.0, 30.0))
    out = _cli("medseg.cli.db", ["load", "--demo"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "data" / "clinical.db").is_file()
    ok = _cli("medseg.cli.diagnose", [f"case={case}", "patient=DEMO-001", "atlas.kind=coarse"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "left frontal lobe" in ok.stdout and "Northbridge" in ok.stdout
    run_dirs = list((tmp_path / "outputs" / "diagnose").iterdir())
    assert (run_dirs[0] / "report.html").is_file() and not (run_dirs[0] / ".hydra").exists()
    assert "DEMO-001" not in (run_dirs[0] / "diagnose.log").read_text()
    bad = _cli("medseg.cli.diagnose", [f"case={case}", "patient=NOBODY", "atlas.kind=coarse"], tmp_path)
    assert bad.returncode == 2 and "config error: patient 'NOBODY' not found" in bad.stderr
    assert "Traceback" not in bad.stderr
    empty = write_case(tmp_path / "BraTS", case_id="BraTS20_Training_002", empty=True)
    bad = _cli("medseg.cli.diagnose", [f"case={empty}", "atlas.kind=coarse"], tmp_path)
    assert bad.returncode == 3 and "data error" in bad.stderr and "contains no tumour" in bad.stderr
    assert "Traceback" not in bad.stderr
    again = _cli("medseg.cli.db", ["load", "--demo"], tmp_path)
    assert again.returncode == 5 and "database error" in again.stderr and "--replace" in again.stderr
    assert "Traceback" not in again.stderr


def test_user_label_map_atlas_replaces_the_coarse_map(demo_db, brats_case, tmp_path):
    from medseg.apps.clinical.flow import make_atlas
    from medseg.apps.clinical.regions import write_coarse_atlas

    nii, names = write_coarse_atlas(tmp_path / "atlas", shape=(80, 80, 52), affine=np.diag([3.0, 3.0, 3.0, 1.0]))
    with pytest.raises(ClinicalError, match="needs a names table"):
        make_atlas(nii)
    atlas = make_atlas(nii, names)
    result = diagnose(case_dir=brats_case(centre_mm=(-35.0, 40.0, 30.0)), patient_id="DEMO-001", db_url=demo_db,
                      atlas=atlas)
    assert result.localisation.atlas == "coarse_atlas.nii.gz"
    assert result.localisation.found[0].name == "left frontal lobe"


def test_case_from_the_dataset_generator_is_localised_where_it_was_placed(demo_db, tmp_path):
    """The BraTS generator of medseg.data.synth places the tumour; the flow finds that lobe and side."""
    from medseg.data.synth.brats import brats_affine, write_brats

    shape = (240, 240, 155)
    affine = brats_affine(shape)
    centre = (np.array(shape) - 1) / 2
    # NIfTI world coordinates are RAS+: 35 mm to the patient's left, 40 mm anterior, 30 mm superior
    world = affine[:3, :3] @ centre + affine[:3, 3] + np.array([-35.0, 40.0, 30.0])
    index = np.linalg.solve(affine[:3, :3], world - affine[:3, 3]).round().astype(int)
    root = write_brats(tmp_path / "BraTS", n_cases=1, shape=shape, seed=1, tumour_centers=[tuple(index)])
    case = root / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_001"
    result = diagnose(case_dir=case, patient_id="DEMO-001", db_url=demo_db, out_dir=tmp_path / "out")
    loc = result.localisation
    assert loc.hemisphere == "left"
    assert (loc.found[0].side, loc.found[0].structure) == ("left", "frontal lobe")
    hospitals = [r for r in result.crosscheck.recommendations if r.kind == "hospital"]
    assert hospitals[0].key == "H-NBR"
