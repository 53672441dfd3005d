"""Symptoms versus image: which regions agree, how well, and who treats them.

* **Symptom regions**: each reported symptom is looked up in the knowledge table; its ``side_rule``
  and the body side of the symptom give the hemisphere(s) (left hemiparesis -> right frontal lobe).
* **Image regions**: the atlas structures holding at least ``min_fraction`` of the tumour volume.
* **Agreement score** (0..1, ``None`` without a known symptom or when regions are not named): the
  harmonic mean of ``image_support`` (share of the tumour volume inside structures the symptoms
  suggest, from voxel counts: never above 1) and ``symptom_support`` (share of known symptoms
  explained by a structure found in the image). It is 1 when every symptom is explained by the tumour
  and the whole tumour lies where the symptoms point.
* **Regions**, each with its reason: ``both`` and ``image only`` are *confirmed* -- the image holds at
  least ``min_fraction`` of the tumour there; ``symptoms only`` regions are listed as "suggested by
  symptoms, not seen in the image" and are never confirmed.
* **Recommendations**: hospitals and doctors treating a *confirmed* structure, ranked by the tumour
  share of each confirmed structure they treat (+0.5 when symptoms agree). Symptoms-only regions weigh
  nothing, so they never drive a recommendation on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from medseg.apps.clinical import db
from medseg.apps.clinical.localise import Localisation

REASONS = ("both", "image only", "symptoms only")
#: how each reason is worded in reports
REASON_TEXT = {"both": "confirmed: image and symptoms", "image only": "confirmed: image only",
               "symptoms only": "suggested by symptoms, not seen in the image"}


@dataclass
class ReportedSymptom:
    """One reported symptom and the regions the knowledge table maps it to."""

    symptom: str
    side: str | None
    known: bool
    regions: list[str] = field(default_factory=list)   # "right frontal lobe", ...
    explained: bool = False                              # a suggested region is found in the image
    notes: list[str] = field(default_factory=list)


@dataclass
class ConfirmedRegion:
    name: str
    structure: str
    side: str | None
    reason: str
    image_fraction: float
    symptoms: list[str]

    @property
    def confirmed(self) -> bool:
        """Seen in the image (at least ``min_fraction`` of the tumour), not only suggested by symptoms."""
        return self.reason != "symptoms only"

    @property
    def weight(self) -> float:
        if not self.confirmed:
            return 0.0
        return self.image_fraction + (0.5 if self.reason == "both" else 0.0)


@dataclass
class Recommendation:
    kind: str                 # "hospital" | "doctor"
    key: str                  # hospital_id / doctor_id
    name: str
    detail: str               # city / specialty at hospital
    structures: list[str]     # confirmed regions it treats
    score: float


@dataclass
class CrossCheck:
    symptoms: list[ReportedSymptom]
    regions: list[ConfirmedRegion]
    image_support: float | None
    symptom_support: float | None
    agreement: float | None
    messages: list[str] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)

    @property
    def unknown_symptoms(self) -> list[str]:
        return [s.symptom for s in self.symptoms if not s.known]

    def to_dict(self) -> dict:
        return asdict(self)


def _sides(rule: str, body_side: str | None) -> tuple[str, ...]:
    if rule in ("left", "right"):
        return (rule,)
    if rule in ("contralateral", "ipsilateral") and body_side in ("left", "right"):
        if rule == "ipsilateral":
            return (body_side,)
        return ("right",) if body_side == "left" else ("left",)
    return ("left", "right")


def _key(side: str | None, structure: str) -> tuple[str | None, str]:
    return (side, " ".join(structure.split()).lower())


def _name(side: str | None, structure: str) -> str:
    return f"{side} {structure}" if side else structure


def _matches(a: tuple[str | None, str], b: tuple[str | None, str]) -> bool:
    return a[1] == b[1] and (a[0] is None or b[0] is None or a[0] == b[0])


def symptom_regions(session: Session, reported: Sequence[tuple[str, str | None]]
                    ) -> tuple[list[ReportedSymptom], dict[tuple[str | None, str], list[str]]]:
    """Look up ``(symptom, body side)`` pairs; returns per-symptom findings and region -> symptoms."""
    findings: list[ReportedSymptom] = []
    suggested: dict[tuple[str | None, str], list[str]] = {}
    for symptom, side in reported:
        rows = db.symptom_knowledge(session, symptom)
        finding = ReportedSymptom(symptom, side, known=bool(rows))
        for row in rows:
            for s in _sides(row.side_rule, side):
                key = _key(s, row.structure)
                finding.regions.append(_name(*key))
                suggested.setdefault(key, [])
                if symptom not in suggested[key]:
                    suggested[key].append(symptom)
            if row.note:
                finding.notes.append(row.note)
        findings.append(finding)
    return findings, suggested


def cross_check(session: Session, loc: Localisation, reported: Sequence[tuple[str, str | None]]) -> CrossCheck:
    """Compare the symptoms ``reported`` (``(symptom, body side or None)``) with the localisation."""
    findings, suggested = symptom_regions(session, reported)
    messages = []
    for f in findings:
        if not f.known:
            messages.append(f"unknown symptom {f.symptom!r}: not in the symptom -> region knowledge table; "
                            "it is listed but not used in the cross-check")
    # voxel counts per (side, structure): every share below is an exact ratio of counts
    image = {_key(r.side, r.structure or r.name): r.voxels for r in loc.found}
    all_overlaps = {_key(r.side, r.structure or r.name): r.voxels for r in loc.structures}
    n = loc.tumour_voxels or sum(all_overlaps.values()) or 1
    if not loc.named:
        messages.append("regions are not named: the registration to the atlas is below its quality floor; "
                        "symptom regions are listed as suggestions only and no recommendation is made")
    elif not image:
        messages.append(f"no region of the map holds {100 * loc.min_fraction:.0f}% or more of the tumour "
                        f"({100 * loc.outside_fraction:.0f}% lies outside the map): symptom regions are listed "
                        "as suggestions only and no recommendation is made")

    known = [f for f in findings if f.known]
    for f in known:
        keys = [k for k, syms in suggested.items() if f.symptom in syms]
        f.explained = any(_matches(k, i) for k in keys for i in image)
    image_support: float | None
    symptom_support: float | None
    agreement: float | None
    if known and loc.named:
        inside = sum(v for key, v in all_overlaps.items() if any(_matches(key, s) for s in suggested))
        image_support = inside / n
        symptom_support = sum(f.explained for f in known) / len(known)
        agreement = (0.0 if image_support + symptom_support == 0
                     else 2 * image_support * symptom_support / (image_support + symptom_support))
    else:
        image_support = symptom_support = agreement = None
        if not known:
            messages.append("no known symptom reported: regions come from the image only")

    regions: list[ConfirmedRegion] = []
    for key, voxels in image.items():
        syms = sorted({s for k, ss in suggested.items() if _matches(k, key) for s in ss})
        regions.append(ConfirmedRegion(_name(*key), key[1], key[0], "both" if syms else "image only",
                                       voxels / n, syms))
    for key, syms in suggested.items():
        if not any(_matches(key, i) for i in image):
            share = sum(v for k, v in all_overlaps.items() if _matches(key, k)) / n
            regions.append(ConfirmedRegion(_name(*key), key[1], key[0], "symptoms only", share, list(syms)))
    regions.sort(key=lambda r: (REASONS.index(r.reason), -r.image_fraction, r.name))
    result = CrossCheck(findings, regions, image_support, symptom_support, agreement, messages)
    result.recommendations = recommend(session, [r for r in regions if r.confirmed])
    if not result.recommendations and any(r.confirmed for r in regions):
        result.messages.append("no hospital or doctor in the database treats the confirmed regions")
    return result


def recommend(session: Session, regions: Sequence[ConfirmedRegion], top: int = 5) -> list[Recommendation]:
    """Hospitals then doctors treating the confirmed regions, best score first (ties by name).

    Regions that are not confirmed by the image are ignored: symptoms alone recommend nobody.
    """
    regions = [r for r in regions if r.confirmed]
    weight_of: dict[str, float] = {}
    for r in regions:
        weight_of[r.structure] = weight_of.get(r.structure, 0.0) + r.weight
    by_name: dict[str, list[str]] = {}
    for r in regions:
        by_name.setdefault(r.structure, []).append(r.name)

    def rank(pairs, kind: str, key, detail) -> list[Recommendation]:
        grouped: dict[str, tuple[Any, list[str]]] = {}
        for obj, structure in pairs:
            grouped.setdefault(key(obj), (obj, []))[1].append(structure)
        out = [Recommendation(kind, k, obj.name, detail(obj), sorted(n for s in structs for n in by_name[s]),
                              sum(weight_of[s] for s in structs))
               for k, (obj, structs) in grouped.items()]
        out.sort(key=lambda r: (-r.score, r.name))
        return out[:top]

    structures = list(weight_of)
    hospitals = rank(db.hospitals_treating(session, structures), "hospital", lambda h: h.hospital_id,
                     lambda h: h.city or "")
    doctors = rank(db.doctors_treating(session, structures), "doctor", lambda d: d.doctor_id,
                   lambda d: ", ".join(x for x in (d.specialty, d.hospital.name if d.hospital else None) if x))
    return hospitals + doctors

