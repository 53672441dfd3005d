"""The whole clinical cross-check in one call: segment -> localise -> database -> cross-check -> report.

Python API::

    from medseg.clinical.flow import diagnose
    result = diagnose(case_dir="BraTS20_Training_001", patient_id="DEMO-001",
                      db_url="sqlite:///clinical.db", out_dir="outputs/diagnose/case1")
    result.localisation.hemisphere, result.crosscheck.agreement, result.report_html

Patient identifiers are never logged: log lines name the case folder's *position in the flow*, not the
patient, and the report shows the identifier only with ``include_patient_id=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg.clinical import ClinicalError, db
from medseg.clinical.crosscheck import CrossCheck, cross_check
from medseg.clinical.localise import REGION_TITLES, Localisation, localise
from medseg.clinical.regions import Atlas, CoarseAtlas, LabelMapAtlas
from medseg.clinical.report import DISCLAIMER, plot_slices, write_report
from medseg.clinical.segment import (
    MODALITIES,
    case_file,
    read_case_images,
    read_segmentation,
    segment_with_run,
)
from medseg.utils.io import write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class PatientInfo:
    """What the report needs of a patient (the identifier stays here, out of logs)."""

    patient_id: str
    age: int | None
    sex: str | None
    case_id: str | None
    symptoms: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class Diagnosis:
    localisation: Localisation
    crosscheck: CrossCheck
    patient: PatientInfo
    source: str
    report_md: Path | None = None
    report_html: Path | None = None


def make_atlas(label_map: str | Path | None = None, names: str | Path | None = None,
               frame: str = "grid_centre") -> Atlas:
    """The coarse built-in atlas, or a user label map with its names table."""
    if label_map is None:
        return CoarseAtlas()
    if names is None:
        raise ClinicalError(f"{label_map}: a user label map needs a names table (atlas.names=<labels.csv>)")
    return LabelMapAtlas.from_files(label_map, names, frame=frame)


def get_tumour(case_dir: str | Path | None = None, seg: str | Path | None = None, run_dir: str | Path | None = None,
               ckpt: str = "best", modalities: Sequence[str] = MODALITIES, device: str = "auto"):
    """Step 1: ``(tumour maps, affine, background image or None, description of the source)``."""
    if seg is None and run_dir is None and case_dir is not None:
        seg = case_file(Path(case_dir), "seg")
        if seg is None:
            raise ClinicalError(f"{case_dir}: no segmentation file {Path(case_dir).name}_seg.nii.gz in the case and "
                                "no model given: pass seg=<file.nii.gz> or run_dir=<a trained medseg run>")
    if seg is not None:
        tumour, affine = read_segmentation(seg)
        source = f"segmentation file {Path(seg).name}"
    elif run_dir is not None:
        if case_dir is None:
            raise ClinicalError("segmenting with a model needs the case folder (case=<BraTS case folder>)")
        tumour, affine = segment_with_run(run_dir, case_dir, ckpt=ckpt, modalities=modalities, device=device)
        source = f"model of run {Path(run_dir).name} ({ckpt} checkpoint)"
    else:
        raise ClinicalError("nothing to localise: give a case folder, a segmentation file, or both a case and a run")
    background = None
    if case_dir is not None and Path(case_dir).is_dir():
        try:
            image, _ = read_case_images(case_dir, modalities[:1])
            if image.shape[1:] == tumour["WT"].shape:
                background = image[0]
        except ClinicalError as exc:
            log.warning("slices drawn without a background image: %s", exc)
    return tumour, affine, background, source


def load_patient(session, patient_id: str | None, case_id: str | None, extra_symptoms: Sequence[str] = ()
                 ) -> PatientInfo:
    """Step 3: the patient (by id, else by the image's case id) and the reported symptoms."""
    if patient_id is not None:
        p = db.get_patient(session, str(patient_id))
    else:
        p = db.patient_for_case(session, case_id) if case_id else None
        if p is None:
            raise ClinicalError(f"no patient given and none linked to case {case_id!r} in the patients table: "
                                "pass patient=<patient id>")
    info = PatientInfo(p.patient_id, p.age, p.sex, p.case_id, [(s.symptom, s.side) for s in p.symptoms])
    info.symptoms += [_parse_symptom(s) for s in extra_symptoms]
    return info


def _parse_symptom(text: str) -> tuple[str, str | None]:
    """``"hemiparesis:right"`` -> ``("hemiparesis", "right")``."""
    name, _, side = str(text).partition(":")
    side = side.strip().lower() or None
    if side not in (None, "left", "right", "both"):
        raise ClinicalError(f"symptom {text!r}: side after ':' must be left, right or both")
    return name.strip(), side


def diagnose(case_dir: str | Path | None = None, patient_id: str | None = None, db_url: str = "sqlite:///clinical.db",
             out_dir: str | Path | None = None, seg: str | Path | None = None, run_dir: str | Path | None = None,
             ckpt: str = "best", atlas: Atlas | None = None, min_fraction: float = 0.05,
             modalities: Sequence[str] = MODALITIES, symptoms: Sequence[str] = (),
             include_patient_id: bool = False, device: str = "auto") -> Diagnosis:
    """Run the clinical cross-check for one case (see the module docstring).

    Args:
        case_dir: BraTS case folder (images; its ``_seg`` file is used when neither ``seg`` nor
            ``run_dir`` is given).
        patient_id: patient to look up; ``None``: the patient whose ``case_id`` is the folder name.
        db_url: SQLAlchemy URL of the clinical database.
        out_dir: where ``report.md``, ``report.html``, ``slices.png`` and ``diagnosis.json`` go;
            ``None`` writes nothing.
        seg / run_dir / ckpt: an existing segmentation, or a trained medseg run and its checkpoint.
        atlas: region map (default: the coarse SRI24 map).
        min_fraction: share of the tumour a region needs to count as found in the image.
        symptoms: extra reported symptoms (``"name"`` or ``"name:side"``) added to the database's.
        include_patient_id: print the identifier in the report (never in logs).
        device: where the model runs (``auto``: CUDA when available).

    Raises:
        ClinicalError: every expected problem, with a message saying what to fix.
    """
    tumour, affine, background, source = get_tumour(case_dir, seg, run_dir, ckpt, modalities, device)
    case_id = Path(case_dir).name if case_dir is not None else Path(str(seg)).name.split("_seg")[0].split(".nii")[0]
    atlas = atlas or CoarseAtlas()
    loc = localise(tumour, affine, atlas, min_fraction=min_fraction, source=str(case_dir or seg))
    log.info("tumour localised: hemisphere %s, %d atlas region(s) above %.0f%%", loc.hemisphere, len(loc.found),
             100 * min_fraction)
    engine = db.connect(db_url)
    try:
        with db.session_scope(engine) as session:
            patient = load_patient(session, patient_id, case_id, symptoms)
            check = cross_check(session, loc, patient.symptoms)
    finally:
        engine.dispose()
    for m in check.messages:
        log.warning("%s", m)
    result = Diagnosis(loc, check, patient, source)
    if out_dir is not None:
        out_dir = Path(out_dir)
        slices = plot_slices(background, tumour, affine, out_dir / "slices.png", title=f"case {case_id}")
        blocks = report_blocks(result, case_id, slices, include_patient_id)
        result.report_md, result.report_html = write_report(out_dir, blocks, f"medseg cross-check: case {case_id}")
        write_json_atomic(out_dir / "diagnosis.json", {
            "case_id": case_id, "source": source, "localisation": loc.to_dict(), "crosscheck": check.to_dict(),
            "patient": {"age": patient.age, "sex": patient.sex,
                        **({"patient_id": patient.patient_id} if include_patient_id else {})},
            "disclaimer": "research software, not a diagnosis"})
        log.info("case report written to %s", result.report_html)
    return result


def report_blocks(result: Diagnosis, case_id: str, slices: Path, include_patient_id: bool) -> list[tuple]:
    loc, check, p = result.localisation, result.crosscheck, result.patient
    who = f"patient {p.patient_id}, " if include_patient_id else ""
    blocks: list[tuple] = [
        ("h1", f"Clinical cross-check: case {case_id}"),
        ("warn", DISCLAIMER),
        ("p", f"{who}age {p.age if p.age is not None else 'unknown'}, sex {p.sex or 'unknown'}; tumour from the "
              f"{result.source}; region map: {loc.atlas}."),
        ("h2", "Tumour"),
        ("table", ["region", "volume (cm3)"], [[f"{REGION_TITLES[k]} ({k})", v] for k, v in loc.volumes_cm3.items()]),
        ("p", f"Centroid: voxel {tuple(loc.centroid_voxel)}, world {tuple(loc.centroid_mm)} mm (RAS); array axes "
              f"point to {''.join(loc.axcodes)}. Hemisphere: **{loc.hemisphere}** (left {100 * loc.side_fractions['left']:.0f}%, "
              f"right {100 * loc.side_fractions['right']:.0f}% of the whole tumour)."),
        ("img", slices, "axial, coronal and sagittal slices through the tumour centroid"),
        ("h2", "Brain regions in the image"),
        ("table", ["region", "volume (cm3)", "% of tumour", f"found (>= {100 * loc.min_fraction:.0f}%)"],
         [[r.name, r.volume_cm3, round(100 * r.fraction, 1), "yes" if r.fraction >= loc.min_fraction else "no"]
          for r in loc.regions] + ([["outside the map", round(loc.volumes_cm3["WT"] * loc.outside_fraction, 3),
                                     round(100 * loc.outside_fraction, 1), "-"]]
                                   if loc.outside_fraction else [])),
        ("h2", "Reported symptoms"),
        ("table", ["symptom", "side", "in knowledge table", "suggested regions", "explained by the image"],
         [[s.symptom, s.side or "", "yes" if s.known else "no", ", ".join(dict.fromkeys(s.regions)) or "-",
           ("yes" if s.explained else "no") if s.known else "-"] for s in check.symptoms]),
        ("h2", "Cross-check"),
        ("p", f"Agreement score: **{_pct(check.agreement)}** (harmonic mean of image support {_pct(check.image_support)}: "
              f"share of the tumour in regions the symptoms suggest, and symptom support {_pct(check.symptom_support)}: "
              "share of known symptoms explained by a region found in the image)."),
        ("table", ["confirmed region", "reason", "% of tumour", "symptoms"],
         [[r.name, r.reason, round(100 * r.image_fraction, 1), ", ".join(r.symptoms) or "-"] for r in check.regions]),
        ("h2", "Recommended hospitals and doctors"),
        ("table", ["kind", "name", "details", "treats", "score"],
         [[r.kind, r.name, r.detail, ", ".join(r.structures), r.score] for r in check.recommendations]),
    ]
    if check.messages:
        blocks += [("h2", "Notes")] + [("p", m) for m in check.messages]
    blocks.append(("warn", DISCLAIMER))
    return blocks


def _pct(x: float | None) -> str:
    return "n/a (no known symptom)" if x is None else f"{100 * x:.0f}%"

