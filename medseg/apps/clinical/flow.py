"""The whole clinical cross-check in one call: segment -> register -> localise -> database -> cross-check -> report.

Python API::

    from medseg.apps.clinical.flow import diagnose
    result = diagnose(case_dir="BraTS20_Training_001", patient_id="DEMO-001",
                      db_url="sqlite:///clinical.db", out_dir="outputs/diagnose/case1")
    result.localisation.hemisphere, result.crosscheck.agreement, result.registration.dice, result.report_html

The default region map is the MNI atlas (:mod:`medseg.apps.clinical.mni`), reached by an affine registration
of the case's T1 (else FLAIR) to the MNI152 brain (:mod:`medseg.apps.clinical.register`); below the
registration's quality floor no region is named. ``atlas=CoarseAtlas()`` (``atlas.kind=coarse``) keeps
the geometric SRI24 map without registration.

Identity: a patient whose database row links another ``case_id`` than the case given stops the flow
with both case ids named, unless ``allow_case_mismatch=True`` (then printed in the report header).

Patient identifiers are never logged: log lines name no patient, and the report shows the identifier
only with ``include_patient_id=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.apps.clinical import db
from medseg.apps.clinical.crosscheck import REASON_TEXT, CrossCheck, cross_check
from medseg.apps.clinical.errors import ClinicalConfigError, ClinicalDataError, ClinicalError
from medseg.apps.clinical.localise import REGION_TITLES, Localisation, localise
from medseg.apps.clinical.regions import Atlas, CoarseAtlas, LabelMapAtlas
from medseg.apps.clinical.register import MIN_DICE, Registration, register_to_mni
from medseg.apps.clinical.report import DISCLAIMER, plot_registration, plot_slices, write_report
from medseg.apps.clinical.segment import (
    MODALITIES,
    case_file,
    read_case_images,
    read_segmentation,
    segment_with_run,
)
from medseg.utils.io import write_json_atomic

log = logging.getLogger(__name__)

ATLAS_KINDS = ("mni", "coarse", "label_map")


@dataclass
class PatientInfo:
    """What the report needs of a patient (the identifier stays here, out of logs).

    ``identity``: one sentence on how the patient was matched to the image (printed in the header);
    ``case_mismatch``: the patient's linked case differs from the image's and the user allowed it.
    """

    patient_id: str
    age: int | None
    sex: str | None
    case_id: str | None
    symptoms: list[tuple[str, str | None]] = field(default_factory=list)
    identity: str = ""
    case_mismatch: bool = False


@dataclass
class Diagnosis:
    localisation: Localisation
    crosscheck: CrossCheck
    patient: PatientInfo
    source: str
    report_md: Path | None = None
    report_html: Path | None = None
    registration: Registration | None = None
    atlas_licence: str | None = None


def make_atlas(label_map: str | Path | None = None, names: str | Path | None = None,
               frame: str = "grid_centre", kind: str | None = None) -> Atlas:
    """The region map: ``kind="mni"`` (default without a label map: the registered MNI atlas),
    ``"coarse"`` (the geometric SRI24 map) or a user label map with its names table."""
    kind = kind or ("label_map" if label_map is not None else "mni")
    if kind not in ATLAS_KINDS:
        raise ClinicalConfigError(f"atlas.kind={kind!r}: expected one of {', '.join(ATLAS_KINDS)}")
    if kind == "mni":
        from medseg.apps.clinical.mni import MNIAtlas

        return MNIAtlas()
    if kind == "coarse":
        return CoarseAtlas()
    if label_map is None:
        raise ClinicalConfigError("atlas.kind=label_map needs atlas.label_map=<labels.nii.gz>")
    if names is None:
        raise ClinicalConfigError(f"{label_map}: a user label map needs a names table (atlas.names=<labels.csv>)")
    return LabelMapAtlas.from_files(label_map, names, frame=frame)


def get_tumour(case_dir: str | Path | None = None, seg: str | Path | None = None, run_dir: str | Path | None = None,
               ckpt: str = "best", modalities: Sequence[str] = MODALITIES, device: str = "auto"):
    """Step 1: ``(tumour maps, affine, background image or None, description of the source)``."""
    if seg is None and run_dir is None and case_dir is not None:
        seg = case_file(Path(case_dir), "seg")
        if seg is None:
            raise ClinicalConfigError(f"{case_dir}: no segmentation file {Path(case_dir).name}_seg.nii.gz in the case and "
                                "no model given: pass seg=<file.nii.gz> or run_dir=<a trained medseg run>")
    tumour: Mapping[str, np.ndarray | None]
    if seg is not None:
        tumour, affine = read_segmentation(seg)
        source = f"segmentation file {Path(seg).name}"
    elif run_dir is not None:
        if case_dir is None:
            raise ClinicalConfigError("segmenting with a model needs the case folder (case=<BraTS case folder>)")
        tumour, affine = segment_with_run(run_dir, case_dir, ckpt=ckpt, modalities=modalities, device=device)
        source = f"model of run {Path(run_dir).name} ({ckpt} checkpoint)"
    else:
        raise ClinicalConfigError("nothing to localise: give a case folder, a segmentation file, or both a case and a run")
    background = None
    if case_dir is not None and Path(case_dir).is_dir():
        try:
            image, _ = read_case_images(case_dir, modalities[:1])
            if (wt := tumour["WT"]) is not None and image.shape[1:] == wt.shape:
                background = image[0]
        except ClinicalError as exc:
            log.warning("slices drawn without a background image: %s", exc)
    return tumour, affine, background, source


def load_patient(session, patient_id: str | None, case_id: str | None, extra_symptoms: Sequence[str] = (),
                 allow_case_mismatch: bool = False) -> PatientInfo:
    """Step 3: the patient (by id, else by the image's case id), checked against the image, and the symptoms.

    Raises:
        ClinicalConfigError: unknown patient; no patient given and none linked to the case; the
            patient's linked case is not this case (unless ``allow_case_mismatch``).
    """
    mismatch = False
    if patient_id is not None:
        p = db.get_patient(session, str(patient_id))
        if p.case_id is None:
            identity = ("the patient has no linked case in the database: the match of patient and image "
                        "could not be checked")
        elif case_id is not None and p.case_id != case_id:
            if not allow_case_mismatch:
                raise ClinicalConfigError(
                    f"the patient is linked to case {p.case_id!r} in the patients table, but the image is case "
                    f"{case_id!r}: check that patient and scan belong together, or pass allow_case_mismatch=true "
                    "to go on anyway (the report then says so in its header)")
            mismatch = True
            identity = (f"CASE MISMATCH ALLOWED (allow_case_mismatch=true): the patient is linked to case "
                        f"{p.case_id}, the image is case {case_id}")
        else:
            identity = f"the patient's linked case {p.case_id} is the image's case"
    else:
        linked = db.patient_for_case(session, case_id) if case_id else None
        if linked is None:
            raise ClinicalConfigError(
                f"no patient given and none linked to case {case_id!r} in the patients table: pass patient=<id> "
                "(or patient_file=<file with the id>, or $MEDSEG_PATIENT_ID)")
        identity = f"patient found through the case id {case_id} in the patients table"
        p = linked
    info = PatientInfo(p.patient_id, p.age, p.sex, p.case_id, [(s.symptom, s.side) for s in p.symptoms],
                       identity, mismatch)
    info.symptoms += [_parse_symptom(s) for s in extra_symptoms]
    return info


def _parse_symptom(text: str) -> tuple[str, str | None]:
    """``"hemiparesis:right"`` -> ``("hemiparesis", "right")``."""
    name, _, after = str(text).partition(":")
    side = after.strip().lower() or None
    if side not in (None, "left", "right", "both"):
        raise ClinicalConfigError(f"symptom {text!r}: side after ':' must be left, right or both")
    return name.strip(), side


def registration_image(case_dir: str | Path | None, seg: str | Path | None,
                       modalities: Sequence[str] = ("t1", "flair")) -> tuple[np.ndarray, np.ndarray, str]:
    """The case's T1 (else FLAIR) for the registration: ``(volume, affine, modality)``.

    Looked for in ``case_dir``, else in the segmentation file's folder.
    """
    folder = Path(case_dir) if case_dir is not None else (Path(seg).parent if seg is not None else None)
    if folder is not None and folder.is_dir():
        for m in modalities:
            if case_file(folder, m) is not None:
                image, affine = read_case_images(folder, [m])
                return image[0], affine, m
    where = f"case {folder.name} ({folder})" if folder is not None else "no case folder"
    raise ClinicalDataError(f"{where}: the MNI atlas registers the case's T1 or FLAIR image and found neither "
                            f"(expected <case>_{'.nii.gz or <case>_'.join(modalities)}.nii.gz); pass case=<folder>, "
                            "or atlas.kind=coarse for the geometric map without registration")


def diagnose(case_dir: str | Path | None = None, patient_id: str | None = None, db_url: str = "sqlite:///clinical.db",
             out_dir: str | Path | None = None, seg: str | Path | None = None, run_dir: str | Path | None = None,
             ckpt: str = "best", atlas: Atlas | None = None, min_fraction: float = 0.05,
             modalities: Sequence[str] = MODALITIES, symptoms: Sequence[str] = (),
             include_patient_id: bool = False, device: str = "auto", min_dice: float = MIN_DICE,
             allow_case_mismatch: bool = False, registration_spacing_mm: float = 3.0) -> Diagnosis:
    """Run the clinical cross-check for one case (see the module docstring).

    Args:
        case_dir: BraTS case folder (images; its ``_seg`` file is used when neither ``seg`` nor
            ``run_dir`` is given).
        patient_id: patient to look up; ``None``: the patient whose ``case_id`` is the folder name.
        db_url: SQLAlchemy URL of the clinical database.
        out_dir: where ``report.md``, ``report.html``, ``slices.png``, ``registration.png`` and
            ``diagnosis.json`` go; ``None`` writes nothing.
        seg / run_dir / ckpt: an existing segmentation, or a trained medseg run and its checkpoint.
        atlas: region map (default: the MNI atlas, reached by registration; ``CoarseAtlas()``: the
            geometric SRI24 map, no registration).
        min_fraction: share of the tumour a region needs to count as found (confirmed) in the image.
        symptoms: extra reported symptoms (``"name"`` or ``"name:side"``) added to the database's.
        include_patient_id: print the identifier in the report (never in logs).
        device: where the model runs (``auto``: CUDA when available).
        min_dice: registration quality floor (Dice of the registered brain with the template's);
            below it no region is named.
        allow_case_mismatch: go on when the patient is linked to another case (said in the report).
        registration_spacing_mm: voxel size the registration works at.

    Raises:
        ClinicalError: every expected problem (its subclass says the kind), with what to fix.
    """
    tumour, affine, background, source = get_tumour(case_dir, seg, run_dir, ckpt, modalities, device)
    case_id = Path(case_dir).name if case_dir is not None else Path(str(seg)).name.split("_seg")[0].split(".nii")[0]
    if atlas is None:
        atlas = make_atlas(kind="mni")
    # identity first: a wrong patient stops before any image work
    engine = db.connect(db_url)
    try:
        with db.session_scope(engine) as session:
            patient = load_patient(session, patient_id, case_id, symptoms, allow_case_mismatch)
    except BaseException:
        engine.dispose()
        raise
    registration = None
    named = True
    if getattr(atlas, "needs_registration", False):
        image, img_affine, modality = registration_image(case_dir, seg)
        if image.shape != tumour["WT"].shape or not np.allclose(img_affine, affine, atol=1e-3):
            engine.dispose()
            raise ClinicalDataError(f"case {case_id}: the {modality} image and the segmentation are on different grids "
                                    f"({image.shape} vs {tumour['WT'].shape}); they must share one grid and affine")
        registration = register_to_mni(image, img_affine, modality=modality, min_dice=min_dice,
                                       spacing_mm=registration_spacing_mm, source=f"case {case_id}")
        if registration.ok:
            atlas = atlas.bind(registration.case_to_mni)
        else:
            named = False
            log.warning("registration Dice %.3f is below the floor %.2f: no region is named", registration.dice,
                        min_dice)
    try:
        loc = localise(tumour, affine, atlas, min_fraction=min_fraction, source=str(case_dir or seg), named=named)
        log.info("tumour localised: hemisphere %s, %d structure(s) above %.0f%%", loc.hemisphere, len(loc.found),
                 100 * min_fraction)
        with db.session_scope(engine) as session:
            check = cross_check(session, loc, patient.symptoms)
    finally:
        engine.dispose()
    if registration is not None and not registration.ok:
        check.messages.insert(0, f"registration quality: Dice {registration.dice:.3f} of the registered brain with "
                                 f"the template's is below the floor {min_dice:.2f}; no region is named")
    for m in check.messages:
        log.warning("%s", m)
    result = Diagnosis(loc, check, patient, source, registration=registration,
                       atlas_licence=getattr(atlas, "licence", None))
    if out_dir is not None:
        out_dir = Path(out_dir)
        slices = plot_slices(background, tumour, affine, out_dir / "slices.png", title=f"case {case_id}")
        reg_png = None
        if registration is not None and registration.registered_mask is not None:
            from medseg.apps.clinical.mni import load_template

            tmpl, t_aff = load_template()
            reg_png = plot_registration(tmpl, t_aff, registration.registered_mask, out_dir / "registration.png",
                                        title=f"registration of the {registration.modality} image: "
                                              f"Dice {registration.dice:.3f}")
        blocks = report_blocks(result, case_id, slices, include_patient_id, reg_png)
        result.report_md, result.report_html = write_report(out_dir, blocks, f"medseg cross-check: case {case_id}")
        write_json_atomic(out_dir / "diagnosis.json", {
            "case_id": case_id, "source": source, "atlas": loc.atlas, "atlas_licence": result.atlas_licence,
            "registration": registration.to_dict() if registration is not None else None,
            "identity": patient.identity, "case_mismatch_allowed": patient.case_mismatch,
            "localisation": loc.to_dict(), "crosscheck": check.to_dict(),
            "patient": {"age": patient.age, "sex": patient.sex,
                        **({"patient_id": patient.patient_id} if include_patient_id else {})},
            "disclaimer": "research software, not a diagnosis"})
        log.info("case report written to %s", result.report_html)
    return result


def _pct1(x: float) -> float:
    """A share as a percentage rounded for display (the stored value stays exact)."""
    return round(100 * x, 1)


def report_blocks(result: Diagnosis, case_id: str, slices: Path, include_patient_id: bool,
                  registration_png: Path | None = None) -> list[tuple]:
    loc, check, p, reg = result.localisation, result.crosscheck, result.patient, result.registration
    who = f"patient {p.patient_id}, " if include_patient_id else ""
    if reg is None:
        reg_text = "none (the region map is used on the case grid directly)"
    else:
        verdict = "above" if reg.ok else "**below** (no region is named)"
        reg_text = (f"affine (rigid + scaling) of the {reg.modality} image to the MNI152 brain at {reg.spacing_mm:g} mm, "
                    f"Dice of the registered brain with the template's **{reg.dice:.3f}**, {verdict} the floor "
                    f"{reg.min_dice:.2f}")
    header = [("p", f"**Atlas:** {loc.atlas}" + (f" ({result.atlas_licence})" if result.atlas_licence else "") + "."),
              ("p", f"**Registration:** {reg_text}."),
              ("p", f"**Identity:** {p.identity}.")]
    blocks: list[tuple] = [("h1", f"Clinical cross-check: case {case_id}"), ("warn", DISCLAIMER)]
    if p.case_mismatch:
        blocks.append(("warn", f"**{p.identity}.**"))
    blocks += header + [
        ("p", f"{who}age {p.age if p.age is not None else 'unknown'}, sex {p.sex or 'unknown'}; tumour from the "
              f"{result.source}."),
        ("h2", "Tumour"),
        ("table", ["region", "volume (cm3)"],
         [[f"{REGION_TITLES[k]} ({k})", None if v is None else round(v, 2)] for k, v in loc.volumes_cm3.items()]),
    ]
    cx = f"; MNI {tuple(round(c, 1) for c in loc.centroid_mni)} mm" if loc.centroid_mni else ""
    if loc.named:
        side = (f"Hemisphere: **{loc.hemisphere}** (left {_pct1(loc.side_fractions['left']):.0f}%, right "
                f"{_pct1(loc.side_fractions['right']):.0f}% of the whole tumour).")
    else:
        side = "Hemisphere and regions: **not named** (registration below its quality floor)."
    blocks += [
        ("p", f"Centroid: voxel {tuple(round(c, 1) for c in loc.centroid_voxel)}, world "
              f"{tuple(round(c, 1) for c in loc.centroid_mm)} mm (RAS){cx}; array axes point to "
              f"{''.join(loc.axcodes)}. {side}"),
        ("img", slices, "axial, coronal and sagittal slices through the tumour centroid"),
    ]
    if registration_png is not None:
        blocks += [("h2", "Registration to the atlas"),
                   ("img", registration_png, "registered case brain outline (red) over the MNI152 template (cyan)")]
    blocks += [
        ("h2", "Brain regions in the image"),
        ("table", ["structure", "volume (cm3)", "% of tumour", f"found (>= {100 * loc.min_fraction:.0f}%)"],
         [[r.name, round(r.volume_cm3, 2), _pct1(r.fraction), "yes" if r.fraction >= loc.min_fraction else "no"]
          for r in loc.structures] + ([["outside the map", round((loc.volumes_cm3["WT"] or 0.0) * loc.outside_fraction, 2),
                                        _pct1(loc.outside_fraction), "-"]]
                                      if loc.outside_fraction and loc.named else [])),
    ]
    if loc.named and [r.name for r in loc.regions] != [r.name for r in loc.structures]:
        blocks.append(("table", ["atlas label", "structure", "% of tumour"],
                       [[r.name, r.structure or "", _pct1(r.fraction)] for r in loc.regions if r.fraction >= 0.01]))
    confirmed = [r for r in check.regions if r.confirmed]
    suggested = [r for r in check.regions if not r.confirmed]
    blocks += [
        ("h2", "Reported symptoms"),
        ("table", ["symptom", "side", "in knowledge table", "suggested regions", "explained by the image"],
         [[s.symptom, s.side or "", "yes" if s.known else "no", ", ".join(dict.fromkeys(s.regions)) or "-",
           ("yes" if s.explained else "no") if s.known else "-"] for s in check.symptoms]),
        ("h2", "Cross-check"),
        ("p", f"Agreement score: **{_pct(check.agreement)}** (harmonic mean of image support {_pct(check.image_support)}: "
              f"share of the tumour in regions the symptoms suggest, and symptom support {_pct(check.symptom_support)}: "
              "share of known symptoms explained by a region found in the image)."),
        ("p", f"A region is **confirmed** only where the image holds at least {100 * loc.min_fraction:.0f}% of the "
              "tumour volume."),
        ("table", ["confirmed region", "evidence", "% of tumour", "symptoms"],
         [[r.name, REASON_TEXT[r.reason], _pct1(r.image_fraction), ", ".join(r.symptoms) or "-"] for r in confirmed]),
        ("h2", "Suggested by symptoms, not seen in the image"),
        ("table", ["region", "% of tumour", "symptoms"],
         [[r.name, _pct1(r.image_fraction), ", ".join(r.symptoms)] for r in suggested]),
        ("p", "These regions never drive a recommendation on their own."),
        ("h2", "Recommended hospitals and doctors (for confirmed regions)"),
        ("table", ["kind", "name", "details", "treats", "score"],
         [[r.kind, r.name, r.detail, ", ".join(r.structures), round(r.score, 3)] for r in check.recommendations]),
    ]
    if check.messages:
        blocks += [("h2", "Notes")] + [("p", m) for m in check.messages]
    blocks.append(("warn", DISCLAIMER))
    return blocks


def _pct(x: float | None) -> str:
    return "n/a (no known symptom, or regions not named)" if x is None else f"{100 * x:.0f}%"
