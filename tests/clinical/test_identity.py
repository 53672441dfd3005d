"""Patient <-> image identity checks, ids of any shape (SQLite always, PostgreSQL under `make test-postgres`),
the command line's quoting, patient_file / $MEDSEG_PATIENT_ID, and Hydra parse errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from medseg.clinical import ClinicalConfigError, ClinicalError, db
from medseg.clinical.flow import diagnose
from medseg.clinical.regions import CoarseAtlas
from medseg.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
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


# --------------------------------------------------------------------------------- command line
def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from medseg.cli._hydra import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("diagnose", overrides=overrides)


@pytest.mark.parametrize("override, expected", [
    ("patient='1; DROP TABLE patients'", "1; DROP TABLE patients"),
    ('patient="O\'Brien"', "O'Brien"),
    ("patient=007", "007"),
    ("patient=' two  spaces '", " two  spaces "),
    ("patient='say \"hi\"; --'", 'say "hi"; --'),
    ("patient=123", "123"),
])
def test_documented_quoting_gives_the_id_verbatim(override, expected, monkeypatch):
    from medseg.cli.diagnose import check_overrides, patient_id

    monkeypatch.delenv("MEDSEG_PATIENT_ID", raising=False)
    check_overrides([override])
    assert patient_id(_compose([override])) == expected


def test_patient_file_and_environment_variable(tmp_path, monkeypatch):
    from medseg.cli.diagnose import patient_id

    monkeypatch.delenv("MEDSEG_PATIENT_ID", raising=False)
    f = tmp_path / "id.txt"
    f.write_text("O'Brien\"; DROP TABLE patients; --\n", encoding="utf-8")
    assert patient_id(OmegaConf.create({"patient": None, "patient_file": str(f)})) == "O'Brien\"; DROP TABLE patients; --"
    monkeypatch.setenv("MEDSEG_PATIENT_ID", "${not interpolated}; '")
    assert patient_id(OmegaConf.create({"patient": None, "patient_file": None})) == "${not interpolated}; '"
    with pytest.raises(ClinicalConfigError, match="give the patient once: patient_file and \\$MEDSEG_PATIENT_ID"):
        patient_id(OmegaConf.create({"patient": None, "patient_file": str(f)}))
    monkeypatch.delenv("MEDSEG_PATIENT_ID")
    with pytest.raises(ClinicalConfigError, match="patient_file=.*missing.txt: cannot read it"):
        patient_id(OmegaConf.create({"patient": None, "patient_file": str(tmp_path / "missing.txt")}))
    with pytest.raises(ClinicalConfigError, match="read by Hydra as a float"):
        patient_id(OmegaConf.create({"patient": 1.5, "patient_file": None}))


def _cli(args: list[str], cwd: Path, **env_extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", MEDSEG_ROOT=str(cwd), **env_extra,
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("MEDSEG_DB_URL", None)
    if "MEDSEG_PATIENT_ID" not in env_extra:
        env.pop("MEDSEG_PATIENT_ID", None)
    return subprocess.run([sys.executable, "-m", "medseg.cli.diagnose", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_parse_error_is_one_line_with_exit_2(tmp_path):
    bad = _cli(["case=x", "patient=D'Arcy"], tmp_path)
    assert bad.returncode == 2, bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medseg-diagnose: config error: cannot parse the command-line "
                                                   "override patient=")
    assert "patient_file" in lines[0] and "D'Arcy" not in lines[0]  # the id itself is not echoed
    assert "Traceback" not in bad.stderr and "LexerNoViableAlt" not in bad.stderr


def test_cli_odd_ids_from_file_and_environment(tmp_path, brats_case):
    url = f"sqlite:///{tmp_path / 'data' / 'clinical.db'}"
    engine = db.connect(url)
    db.load_csv_dir(engine, db.DEMO_DIR)
    db.load_csv_dir(engine, _write_patients(tmp_path / "odd", [["1; DROP TABLE patients", "40", "F", "Case_A"],
                                                               ["O'Brien", "41", "M", "Case_B"]]))
    engine.dispose()
    case_a = brats_case(case_id="Case_A", centre_mm=(-35.0, 40.0, 30.0))
    (tmp_path / "id.txt").write_text("1; DROP TABLE patients\n")
    by_file = _cli([f"case={case_a}", f"patient_file={tmp_path / 'id.txt'}", "atlas.kind=coarse"], tmp_path)
    assert by_file.returncode == 0, by_file.stderr
    assert "the patient's linked case Case_A is the image's case" in by_file.stdout
    # O'Brien through the environment, against the wrong case: stops, naming both cases (exit 2)
    by_env = _cli([f"case={case_a}", "atlas.kind=coarse"], tmp_path, MEDSEG_PATIENT_ID="O'Brien")
    assert by_env.returncode == 2 and "linked to case 'Case_B'" in by_env.stderr and "'Case_A'" in by_env.stderr
    assert len(by_env.stderr.strip().splitlines()) <= 2 and "Traceback" not in by_env.stderr
    engine = db.connect(url)
    assert db.table_counts(engine)["patients"] == 7  # nothing dropped
    engine.dispose()
