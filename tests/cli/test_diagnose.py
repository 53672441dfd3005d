"""``medseg-diagnose`` on the command line: the documented quoting of odd patient ids, ``patient_file=`` and
``$MEDSEG_PATIENT_ID``, and a command line Hydra cannot parse (one line, exit 2). Runs on the coarse map
(no registration) and SQLite; the flow itself is tested in tests/apps/clinical/."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from medseg.apps.clinical import ClinicalConfigError, db
from tests.apps.clinical.clinical_synth import write_case

REPO = Path(__file__).resolve().parents[2]


def _write_patients(folder: Path, rows: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "patients.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "age", "sex", "case_id"])
        w.writerows(rows)
    return folder


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


def test_cli_odd_ids_from_file_and_environment(tmp_path):
    url = f"sqlite:///{tmp_path / 'data' / 'clinical.db'}"
    engine = db.connect(url)
    db.load_csv_dir(engine, db.DEMO_DIR)
    db.load_csv_dir(engine, _write_patients(tmp_path / "odd", [["1; DROP TABLE patients", "40", "F", "Case_A"],
                                                               ["O'Brien", "41", "M", "Case_B"]]))
    engine.dispose()
    case_a = write_case(tmp_path / "BraTS", case_id="Case_A", centre_mm=(-35.0, 40.0, 30.0))
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
