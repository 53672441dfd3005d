"""Patient <-> image identity checks and ids of any shape (SQLite always, PostgreSQL under
`make test-postgres`). The command line's quoting, patient_file / $MEDSEG_PATIENT_ID and Hydra parse
errors are in tests/cli/test_diagnose.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medseg.apps.clinical import ClinicalConfigError, ClinicalError, db
from medseg.apps.clinical.flow import diagnose
from medseg.apps.clinical.regions import CoarseAtlas
from medseg.errors import ConfigError

# ids a shell, Hydra or SQL could mangle: each is linked to its own case
ODD_IDS = ["1; DROP TABLE patients", "O'Brien", 'say "hi"; --', "  two  spaces ", "007", "x' OR '1'='1", "é 脑 %s"]


def _write_patients(folder: Path, rows: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "patients.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "age", "sex", "case_id"])
        w.writerows(rows)
    with open(folder / "symptoms.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "symptom", "side", "note"])
        w.writerows([[r[0], "aphasia", "", ""] for r in rows])
    return folder


@pytest.fixture
def demo_db(db_url):
    engine = db.connect(db_url)
    db.load_csv_dir(engine, db.DEMO_DIR)
    engine.dispose()
    return db_url


def test_patient_linked_to_another_case_stops_naming_both(demo_db, brats_case, tmp_path):
    # DEMO-001 is linked to BraTS20_Training_001; the image is case 006 (the report)
    case = brats_case(case_id="BraTS20_Training_006", centre_mm=(-35.0, 40.0, 30.0))
    with pytest.raises(ClinicalConfigError, match="linked to case 'BraTS20_Training_001'.*image is case "
                                                  "'BraTS20_Training_006'.*allow_case_mismatch=true") as err:
        diagnose(case_dir=case, patient_id="DEMO-001", db_url=demo_db, atlas=CoarseAtlas(), out_dir=tmp_path / "x")
    assert err.value.exit_code == 2 and isinstance(err.value, ConfigError)
    assert not (tmp_path / "x").exists()  # stopped before writing anything
    result = diagnose(case_dir=case, patient_id="DEMO-001", db_url=demo_db, atlas=CoarseAtlas(),
                      out_dir=tmp_path / "out", allow_case_mismatch=True)
    assert result.patient.case_mismatch
    md = result.report_md.read_text()
    head = md.split("## Tumour")[0]
    assert "CASE MISMATCH ALLOWED (allow_case_mismatch=true)" in head
    assert "BraTS20_Training_001" in head and "BraTS20_Training_006" in head
    saved = json.loads((tmp_path / "out" / "diagnosis.json").read_text())
    assert saved["case_mismatch_allowed"] is True


def test_identity_is_stated_in_every_report(demo_db, brats_case, tmp_path):
    case = brats_case(centre_mm=(-35.0, 40.0, 30.0))
    ok = diagnose(case_dir=case, patient_id="DEMO-001", db_url=demo_db, atlas=CoarseAtlas(), out_dir=tmp_path / "a")
    assert "**Identity:** the patient's linked case BraTS20_Training_001 is the image's case" in ok.report_md.read_text()
    by_case = diagnose(case_dir=case, db_url=demo_db, atlas=CoarseAtlas())
    assert by_case.patient.patient_id == "DEMO-001" and "found through the case id" in by_case.patient.identity
    # no linked patient and no patient given: says so, and how to give one
    with pytest.raises(ClinicalConfigError, match="no patient given and none linked to case 'Unlinked_9'.*patient_file"):
        diagnose(case_dir=brats_case(case_id="Unlinked_9"), db_url=demo_db, atlas=CoarseAtlas())
    # a patient without a linked case: the report says the match could not be checked
    engine = db.connect(demo_db)
    db.load_csv_dir(engine, _write_patients(tmp_path / "nolink", [["P-NOLINK", "50", "F", ""]]))
    engine.dispose()
    res = diagnose(case_dir=case, patient_id="P-NOLINK", db_url=demo_db, atlas=CoarseAtlas(), out_dir=tmp_path / "b")
    assert "could not be checked" in res.report_md.read_text()


def test_sql_looking_ids_round_trip(db_url, brats_case, tmp_path):
    """Ids with quotes, apostrophes, spaces, semicolons and leading zeros are stored, found and matched to
    their case verbatim; the tables stay intact."""
    rows = [[pid, "40", "F", f"Case_{n}"] for n, pid in enumerate(ODD_IDS)]
    engine = db.connect(db_url)
    db.load_csv_dir(engine, db.DEMO_DIR)
    db.load_csv_dir(engine, _write_patients(tmp_path / "odd", rows))
    for n, pid in enumerate(ODD_IDS):
        case = brats_case(case_id=f"Case_{n}", centre_mm=(-35.0, 40.0, 30.0))
        result = diagnose(case_dir=case, patient_id=pid, db_url=db_url, atlas=CoarseAtlas())
        assert result.patient.patient_id == pid and result.patient.case_id == f"Case_{n}"
        assert not result.patient.case_mismatch
        # found back through the case id too
        assert diagnose(case_dir=case, db_url=db_url, atlas=CoarseAtlas()).patient.patient_id == pid
    with pytest.raises(ClinicalError, match="not found"):
        diagnose(case_dir=brats_case(case_id="Case_1"), patient_id="o'brien", db_url=db_url, atlas=CoarseAtlas())
    counts = db.table_counts(engine)
    assert counts["patients"] == 5 + len(ODD_IDS) and counts["symptoms"] > len(ODD_IDS)
    engine.dispose()
