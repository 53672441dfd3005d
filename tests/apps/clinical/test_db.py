"""Database models, loader and queries, run against SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import csv
import logging

import pytest
from sqlalchemy import create_engine

from medseg.apps.clinical import ClinicalError, db

NASTY_ID = "O'Brien\"; DROP TABLE patients; --"
NASTY_SYMPTOM = "aphasia'); DELETE FROM symptoms; --"
NASTY_NOTE = "50% of \\n %s %(x)s NA NULL ' \" ; -- é 脑"


def _write(folder, table, header, rows):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{table}.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _csv_rows(table):
    with open(db.DEMO_DIR / f"{table}.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_demo_set_loads_and_queries(db_url):
    engine = db.connect(db_url)  # creates the tables on first use
    counts = db.load_csv_dir(engine, db.DEMO_DIR)
    assert counts == {t: len(_csv_rows(t)) for t in db.TABLES}
    assert db.table_counts(engine) == counts
    with db.session_scope(engine) as s:
        p = db.get_patient(s, "DEMO-001")
        assert (p.age, p.sex, p.case_id) == (54, "F", "BraTS20_Training_001")
        assert [(x.symptom, x.side) for x in p.symptoms] == [("aphasia", None), ("hemiparesis", "right")]
        assert db.patient_for_case(s, "BraTS20_Training_003").patient_id == "DEMO-003"
        assert {r.structure for r in db.symptom_knowledge(s, "  Aphasia ")} == {"frontal lobe", "temporal lobe"}
        assert db.symptom_knowledge(s, "headache") == []
        hospitals = {h.hospital_id for h, st in db.hospitals_treating(s, ["cerebellum"])}
        assert hospitals == {"H-HRB"}
        doctors = db.doctors_treating(s, ["occipital lobe"])
        assert {d.doctor_id for d, _ in doctors} == {"D-06", "D-07"}
        assert all(d.hospital.hospital_id == "H-LKS" for d, _ in doctors)
    engine.dispose()


def test_quotes_and_sql_fragments_are_stored_verbatim(db_url, tmp_path):
    csv_dir = tmp_path / "csv"
    _write(csv_dir, "patients", ["patient_id", "age", "sex", "case_id"], [[NASTY_ID, "40", "F", "case'; --"]])
    _write(csv_dir, "symptoms", ["patient_id", "symptom", "side", "note"], [[NASTY_ID, NASTY_SYMPTOM, "", NASTY_NOTE]])
    _write(csv_dir, "symptom_regions", ["symptom", "structure", "side_rule", "weight", "note"],
           [[NASTY_SYMPTOM, "frontal lobe", "left", "1", "x' OR '1'='1"]])
    engine = db.connect(db_url)
    db.load_csv_dir(engine, csv_dir)
    with db.session_scope(engine) as s:
        p = db.get_patient(s, NASTY_ID)
        assert p.patient_id == NASTY_ID and p.case_id == "case'; --"
        assert [(x.symptom, x.note) for x in p.symptoms] == [(NASTY_SYMPTOM, NASTY_NOTE)]
        assert db.patient_for_case(s, "case'; --").patient_id == NASTY_ID
        assert [r.note for r in db.symptom_knowledge(s, NASTY_SYMPTOM)] == ["x' OR '1'='1"]
        # fragments used as query values match nothing and break nothing
        with pytest.raises(ClinicalError, match="not found"):
            db.get_patient(s, "x' OR '1'='1")
        assert db.hospitals_treating(s, ["frontal lobe') OR 1=1 --"]) == []
    assert db.table_counts(engine)["patients"] == 1 and db.table_counts(engine)["symptoms"] == 1
    engine.dispose()


def test_missing_patient_and_empty_database_messages(db_url):
    engine = db.connect(db_url)
    with db.session_scope(engine) as s, pytest.raises(ClinicalError, match="database is empty.*medseg-db load"):
        db.get_patient(s, "DEMO-001")
    db.load_csv_dir(engine, db.DEMO_DIR)
    with db.session_scope(engine) as s, pytest.raises(ClinicalError, match="'NOBODY' not found") as err:
        db.get_patient(s, "NOBODY")
    assert "empty" not in str(err.value)
    engine.dispose()


def test_loader_rejects_bad_files_and_writes_nothing(db_url, tmp_path, caplog):
    engine = db.connect(db_url)
    bad = tmp_path / "bad"
    _write(bad, "symptom_regions", ["symptom", "structure", "side_rule"], [["aphasia", "frontal lobe", "sideways"]])
    with pytest.raises(ClinicalError, match=r"symptom_regions.csv:2: side_rule 'sideways'"):
        db.load_csv_dir(engine, bad)
    _write(bad, "symptom_regions", ["symptom", "region"], [["aphasia", "frontal lobe"]])
    with pytest.raises(ClinicalError, match="symptom_regions.csv: missing column.*structure"):
        db.load_csv_dir(engine, bad)
    _write(bad, "patients", ["patient_id", "sex"], [["P1", "x" * 40]])
    with pytest.raises(ClinicalError, match="patients.csv:2: sex is 40 characters long, the limit is 16"):
        db.load_csv_dir(engine, bad)
    dup = tmp_path / "dup"
    _write(dup, "patients", ["patient_id", "age"], [["SECRET-42", "30"], ["SECRET-42", "31"]])
    with caplog.at_level(logging.DEBUG), pytest.raises(ClinicalError, match="nothing was written") as err:
        db.load_csv_dir(engine, dup)
    assert "SECRET-42" not in str(err.value) and "SECRET-42" not in caplog.text
    orphan = tmp_path / "orphan"
    _write(orphan, "symptoms", ["patient_id", "symptom"], [["NOBODY", "aphasia"]])
    with pytest.raises(ClinicalError, match="nothing was written"):  # foreign keys enforced, SQLite too
        db.load_csv_dir(engine, orphan)
    assert sum(db.table_counts(engine).values()) == 0
    engine.dispose()


def test_replace_reloads_tables(db_url):
    engine = db.connect(db_url)
    db.load_csv_dir(engine, db.DEMO_DIR)
    with pytest.raises(ClinicalError, match="--replace"):
        db.load_csv_dir(engine, db.DEMO_DIR)
    counts = db.load_csv_dir(engine, db.DEMO_DIR, replace=True)
    assert db.table_counts(engine) == counts
    engine.dispose()


def test_bad_urls_are_clear_errors(tmp_path):
    with pytest.raises(ClinicalError, match="invalid database URL"):
        db.connect("not a url")
    with pytest.raises(ClinicalError, match="cannot open database postgresql\\+psycopg://u:\\*\\*\\*@127.0.0.1:9/x"):
        db.connect("postgresql+psycopg://u:secret@127.0.0.1:9/x")
    url = f"sqlite:///{tmp_path / 'new' / 'sub' / 'c.db'}"
    db.connect(url).dispose()
    assert (tmp_path / "new" / "sub" / "c.db").is_file()
    assert set(create_engine(url).dialect.get_table_names(create_engine(url).connect())) == set(db.TABLES)
