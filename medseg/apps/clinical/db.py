"""The clinical database: SQLAlchemy 2.x ORM models, parameterised queries and a CSV loader.

Tables (CSV file = table name + ``.csv``; header row = column names):

=====================  ========================================================================
table                  columns
=====================  ========================================================================
``patients``           ``patient_id, age, sex, case_id`` (``case_id``: the image / BraTS case)
``symptoms``           ``patient_id, symptom, side, note`` (reported; ``side``: body side or empty)
``symptom_regions``    ``symptom, structure, side_rule, weight, note`` (knowledge: symptom -> region)
``hospitals``          ``hospital_id, name, city``
``doctors``            ``doctor_id, name, specialty, hospital_id``
``hospital_regions``   ``hospital_id, structure`` (brain structures a hospital treats)
``doctor_regions``     ``doctor_id, structure``
=====================  ========================================================================

``side_rule`` says which hemisphere a symptom points to: ``left`` / ``right`` (fixed, e.g. aphasia
-> left in most people), ``contralateral`` / ``ipsilateral`` (relative to the body side of the
reported symptom: left hemiparesis -> right motor cortex; cerebellar signs are ipsilateral) or
``both``. Structures use the names of :data:`medseg.apps.clinical.regions.STRUCTURES`.

Every query goes through the ORM / ``select()`` with bound parameters; engines are created with
``hide_parameters=True`` so a failing statement never writes a patient identifier into a log or an
exception message. The default URL is a SQLite file created (with its tables) on first use; any
SQLAlchemy URL works, e.g. ``postgresql+psycopg://user:pass@host/db``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Float, ForeignKey, Integer, String, Text, create_engine, delete, event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from medseg.apps.clinical.errors import ClinicalConfigError, ClinicalDatabaseError, ClinicalDataError
from medseg.apps.clinical.regions import STRUCTURES

log = logging.getLogger(__name__)

SIDE_RULES = ("left", "right", "both", "contralateral", "ipsilateral")
DEMO_DIR = Path(__file__).resolve().parent / "demo_data"


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patients"
    patient_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sex: Mapped[str | None] = mapped_column(String(16), nullable=True)
    case_id: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    symptoms: Mapped[list[Symptom]] = relationship(back_populates="patient", cascade="all, delete-orphan",
                                                   order_by="Symptom.id")


class Symptom(Base):
    __tablename__ = "symptoms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.patient_id"), index=True)
    symptom: Mapped[str] = mapped_column(Text)
    side: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    patient: Mapped[Patient] = relationship(back_populates="symptoms")


class SymptomRegion(Base):
    __tablename__ = "symptom_regions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symptom: Mapped[str] = mapped_column(Text, index=True)
    structure: Mapped[str] = mapped_column(String(64))
    side_rule: Mapped[str] = mapped_column(String(16), default="both")
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Hospital(Base):
    __tablename__ = "hospitals"
    hospital_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text, nullable=True)
    doctors: Mapped[list[Doctor]] = relationship(back_populates="hospital", order_by="Doctor.doctor_id")


class Doctor(Base):
    __tablename__ = "doctors"
    doctor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    specialty: Mapped[str | None] = mapped_column(Text, nullable=True)
    hospital_id: Mapped[str | None] = mapped_column(ForeignKey("hospitals.hospital_id"), nullable=True)
    hospital: Mapped[Hospital | None] = relationship(back_populates="doctors")


class HospitalRegion(Base):
    __tablename__ = "hospital_regions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hospital_id: Mapped[str] = mapped_column(ForeignKey("hospitals.hospital_id"), index=True)
    structure: Mapped[str] = mapped_column(String(64))


class DoctorRegion(Base):
    __tablename__ = "doctor_regions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doctor_id: Mapped[str] = mapped_column(ForeignKey("doctors.doctor_id"), index=True)
    structure: Mapped[str] = mapped_column(String(64))


#: load order (parents before children) and the columns each CSV must have
TABLES: dict[str, tuple[type[Base], tuple[str, ...], tuple[str, ...]]] = {
    # name: (model, required columns, optional columns)
    "patients": (Patient, ("patient_id",), ("age", "sex", "case_id")),
    "symptoms": (Symptom, ("patient_id", "symptom"), ("side", "note")),
    "symptom_regions": (SymptomRegion, ("symptom", "structure"), ("side_rule", "weight", "note")),
    "hospitals": (Hospital, ("hospital_id", "name"), ("city",)),
    "doctors": (Doctor, ("doctor_id", "name"), ("specialty", "hospital_id")),
    "hospital_regions": (HospitalRegion, ("hospital_id", "structure"), ()),
    "doctor_regions": (DoctorRegion, ("doctor_id", "structure"), ()),
}


# ----------------------------------------------------------------------------------- engine
def safe_url(url: str) -> str:
    """The URL with any password masked (for messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def connect(url: str, create: bool = True) -> Engine:
    """Engine for ``url``; creates a SQLite file's folder and all tables on first use.

    Raises :class:`~medseg.apps.clinical.ClinicalConfigError` for a malformed URL or a missing driver and
    :class:`~medseg.apps.clinical.ClinicalDatabaseError` for an unreachable server.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ClinicalConfigError(f"invalid database URL (db.url / --url) {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed, hide_parameters=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_foreign_keys)
        if create:
            Base.metadata.create_all(engine)
        else:
            with engine.connect():
                pass
    except ModuleNotFoundError as exc:
        raise ClinicalConfigError(f"database driver missing for {safe_url(url)} ({exc.name}); for PostgreSQL "
                            "install the 'postgres' extra: pip install 'medseg[postgres]'") from None
    except SQLAlchemyError as exc:
        raise ClinicalDatabaseError(f"cannot open database {safe_url(url)}: {type(exc).__name__}: {_first_line(exc)}") from None
    return engine


def _sqlite_foreign_keys(dbapi_connection, _record) -> None:
    """SQLite enforces foreign keys only when asked, per connection."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# ---------------------------------------------------------------------------------- queries
def get_patient(session: Session, patient_id: str) -> Patient:
    """The patient with ``patient_id`` (symptoms loaded), or :class:`ClinicalConfigError`."""
    patient = session.scalars(select(Patient).where(Patient.patient_id == patient_id)).one_or_none()
    if patient is None:
        n = session.scalar(select(func.count()).select_from(Patient))
        hint = " (the database is empty: load it with `medseg-db load --demo` or `--csv-dir`)" if not n else ""
        raise ClinicalConfigError(f"patient {patient_id!r} not found in the patients table{hint}")
    _ = list(patient.symptoms)  # load while the session is open
    return patient


def patient_for_case(session: Session, case_id: str) -> Patient | None:
    return session.scalars(select(Patient).where(Patient.case_id == case_id)).first()


def symptom_knowledge(session: Session, symptom: str) -> list[SymptomRegion]:
    """Knowledge rows of one symptom (matched case-insensitively, surrounding blanks ignored)."""
    key = normalise_symptom(symptom)
    return list(session.scalars(select(SymptomRegion).where(func.lower(func.trim(SymptomRegion.symptom)) == key)
                                .order_by(SymptomRegion.id)))


def _treating(session: Session, model, link, key: str, structures: Iterable[str]) -> list[tuple]:
    """``(row of model, structure)`` joined through ``link`` (rows of ``key`` that treat ``structure``)."""
    structures = sorted(set(structures))
    if not structures:
        return []
    rows = session.execute(select(model, link.structure)
                           .join(link, getattr(link, key) == getattr(model, key))
                           .where(link.structure.in_(structures))
                           .order_by(getattr(model, key), link.structure))
    return [(obj, structure) for obj, structure in rows]


def hospitals_treating(session: Session, structures: Iterable[str]) -> list[tuple[Hospital, str]]:
    """``(hospital, structure)`` pairs for hospitals that treat any of ``structures``."""
    return _treating(session, Hospital, HospitalRegion, "hospital_id", structures)


def doctors_treating(session: Session, structures: Iterable[str]) -> list[tuple[Doctor, str]]:
    """``(doctor, structure)`` pairs (doctor's hospital loaded) for doctors treating any of ``structures``."""
    pairs = _treating(session, Doctor, DoctorRegion, "doctor_id", structures)
    for doctor, _ in pairs:
        _ = doctor.hospital
    return pairs


def normalise_symptom(name: str) -> str:
    return " ".join(str(name).split()).lower()


# ----------------------------------------------------------------------------------- loading
def _coerce(table: str, column: str, value: str, where: str):
    """CSV text -> column value. Text stays verbatim (quotes, SQL fragments, 'NA' are data)."""
    if value == "" and column not in TABLES[table][1]:
        return None
    if column == "age":
        try:
            return int(value)
        except ValueError:
            raise ClinicalDataError(f"{where}: age {value!r} is not an integer") from None
    if column == "weight":
        try:
            return float(value)
        except ValueError:
            raise ClinicalDataError(f"{where}: weight {value!r} is not a number") from None
    if column == "side_rule" and value not in SIDE_RULES:
        raise ClinicalDataError(f"{where}: side_rule {value!r} must be one of {', '.join(SIDE_RULES)}")
    if column == "structure":
        if value.strip().lower() not in STRUCTURES:
            log.warning("%s: structure %r is not a coarse-atlas structure (fine for a custom label map)", where, value)
        return " ".join(value.split()).lower()
    if column == "side" and value.lower() not in ("left", "right", "both"):
        raise ClinicalDataError(f"{where}: side {value!r} must be left, right, both or empty")
    return value.lower() if column == "side" else value


def read_table_csv(path: Path, table: str) -> list[dict]:
    """Rows of one CSV file as column -> value dicts, checked against the table's columns."""
    model, required, optional = TABLES[table]
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        unknown = [c for c in header if c not in required + optional]
        if missing:
            raise ClinicalDataError(f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(required + optional)})")
        if unknown:
            raise ClinicalDataError(f"{path}: unknown column(s) {', '.join(unknown)} (expected {', '.join(required + optional)})")
        rows = []
        for line, raw in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if None in raw:
                raise ClinicalDataError(f"{where}: more fields than header columns")
            row = {}
            for col in header:
                value = raw[col] if raw[col] is not None else ""
                if col in required and value == "":
                    raise ClinicalDataError(f"{where}: required column {col!r} is empty")
                limit = getattr(model.__table__.c[col].type, "length", None)
                if limit and len(value) > limit:
                    raise ClinicalDataError(f"{where}: {col} is {len(value)} characters long, the limit is {limit}")
                row[col] = _coerce(table, col, value, where)
            rows.append(row)
    return rows


def load_csv_dir(engine: Engine, csv_dir: str | Path, replace: bool = False) -> dict[str, int]:
    """Load every ``<table>.csv`` present in ``csv_dir`` in one transaction; returns rows per table.

    ``replace=True`` first empties the tables being loaded (children before parents). Duplicate keys
    or references to missing patients/hospitals/doctors raise :class:`ClinicalDatabaseError` and load nothing.
    """
    csv_dir = Path(csv_dir)
    if not csv_dir.is_dir():
        raise ClinicalDataError(f"{csv_dir}: CSV folder not found")
    present = {t: csv_dir / f"{t}.csv" for t in TABLES if (csv_dir / f"{t}.csv").is_file()}
    if not present:
        raise ClinicalDataError(f"{csv_dir}: no table CSV found (expected some of {', '.join(f'{t}.csv' for t in TABLES)})")
    data = {t: read_table_csv(p, t) for t, p in present.items()}
    counts: dict[str, int] = {}
    try:
        with session_scope(engine) as session:
            if replace:
                for table in reversed(list(TABLES)):
                    if table in data or _depends_on_loaded(table, data):
                        session.execute(delete(TABLES[table][0]))
            for table, rows in data.items():
                model = TABLES[table][0]
                session.add_all(model(**row) for row in rows)
                session.flush()
                counts[table] = len(rows)
    except IntegrityError as exc:
        raise ClinicalDatabaseError(f"{csv_dir}: loading failed, nothing was written: {_first_line(exc)} (duplicate id, "
                            "or a row referring to a patient/hospital/doctor that does not exist; use --replace "
                            "to reload tables)") from None
    except SQLAlchemyError as exc:
        raise ClinicalDatabaseError(f"{csv_dir}: loading failed, nothing was written: {_first_line(exc)}") from None
    log.info("loaded %s into %s", ", ".join(f"{t}: {n} rows" for t, n in counts.items()), safe_url(str(engine.url)))
    return counts


def _first_line(exc: SQLAlchemyError) -> str:
    """The driver's first message line: no statement, no bound values (hence no patient identifiers)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else type(exc).__name__).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _depends_on_loaded(table: str, data: dict) -> bool:
    """Child tables must be emptied when their parent table is replaced."""
    parents = {"symptoms": "patients", "doctors": "hospitals", "hospital_regions": "hospitals",
               "doctor_regions": "doctors"}
    parent = parents.get(table)
    return parent is not None and (parent in data or _depends_on_loaded(parent, data))


def table_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {t: int(session.scalar(select(func.count()).select_from(m)) or 0) for t, (m, _, _) in TABLES.items()}
