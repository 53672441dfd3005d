"""``medseg-db`` as a user runs it: load the demo tables into a fresh SQLite file, count them, and the
clear errors (a missing CSV folder; loading twice without --replace)."""

from __future__ import annotations

from tests.cli.conftest import assert_one_line_error
from tests.conftest import run_cli

DEMO_COUNTS = {"patients": 5, "symptoms": 10, "symptom_regions": 20, "hospitals": 4, "doctors": 7,
               "hospital_regions": 11, "doctor_regions": 14}


def test_load_demo_then_counts_then_refuse_a_second_load(tmp_path):
    load = run_cli("medseg.cli.db", ["load", "--demo"], tmp_path)  # MEDSEG_ROOT=tmp_path: data/clinical.db
    assert load.returncode == 0, load.stderr
    db = tmp_path / "data" / "clinical.db"
    assert db.is_file() and str(db) in load.stdout
    counts = run_cli("medseg.cli.db", ["counts"], tmp_path)
    assert counts.returncode == 0, counts.stderr
    assert dict((name, int(n)) for name, n in (line.split() for line in counts.stdout.splitlines())) == DEMO_COUNTS
    again = run_cli("medseg.cli.db", ["load", "--demo"], tmp_path)
    assert_one_line_error(again, "medseg-db", 5, "--replace")
    replaced = run_cli("medseg.cli.db", ["load", "--demo", "--replace"], tmp_path)
    assert replaced.returncode == 0, replaced.stderr


def test_missing_csv_folder_is_a_data_error(tmp_path):
    missing = tmp_path / "no_tables"
    proc = run_cli("medseg.cli.db", ["load", "--csv-dir", str(missing)], tmp_path)
    assert_one_line_error(proc, "medseg-db", 3, f"{missing}: CSV folder not found")
    assert not (tmp_path / "data" / "clinical.db").exists()  # nothing half-made is left behind
