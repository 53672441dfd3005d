"""Clinical cross-check of a brain-tumour segmentation (research software, not a diagnosis).

Flow: segmentation -> :mod:`~medseg.apps.clinical.register` (affine registration of the case to the MNI152
brain) -> :mod:`~medseg.apps.clinical.localise` (volumes, centroid, hemisphere, atlas regions from
:mod:`~medseg.apps.clinical.mni` or :mod:`~medseg.apps.clinical.regions`) -> :mod:`~medseg.apps.clinical.db` (patient,
symptoms, knowledge table, hospitals) -> :mod:`~medseg.apps.clinical.crosscheck` (agreement, confirmed regions,
recommendations) -> :mod:`~medseg.apps.clinical.report`. :func:`medseg.apps.clinical.flow.diagnose` runs it all.

Errors use the project's kinds (:mod:`medseg.errors`), so the CLI exits with their codes:

=============================  ====================================================================  ====
exception                      raised for                                                            exit
=============================  ====================================================================  ====
:class:`ClinicalConfigError`   a bad option or id: unknown patient, patient linked to another case,  2
                               a bad ``name:side``, a label map without names, an invalid DB URL
:class:`ClinicalDataError`     input data: a missing modality or file, an empty segmentation, bad    3
                               labels, an unreadable NIfTI, a bad CSV row
:class:`ClinicalDatabaseError` the database cannot be reached, or a load breaks its constraints      5
=============================  ====================================================================  ====

All three derive from :class:`ClinicalError`, so ``except ClinicalError`` catches any of them (they live in
:mod:`~medseg.apps.clinical.errors`). An application on the core: nothing in the core imports it.
"""

# the errors live in .errors (every submodule imports them from there), so this order is free
from medseg.apps.clinical import db
from medseg.apps.clinical.crosscheck import REASON_TEXT, CrossCheck, cross_check, recommend, symptom_regions
from medseg.apps.clinical.errors import (
    ClinicalConfigError,
    ClinicalDatabaseError,
    ClinicalDataError,
    ClinicalError,
)
from medseg.apps.clinical.flow import Diagnosis, PatientInfo, diagnose, make_atlas, report_blocks
from medseg.apps.clinical.localise import Localisation, RegionOverlap, describe, localise, regions_from_labels
from medseg.apps.clinical.mni import MNIAtlas
from medseg.apps.clinical.regions import Atlas, CoarseAtlas, LabelMapAtlas, Region, write_coarse_atlas
from medseg.apps.clinical.register import Registration, register_to_mni
from medseg.apps.clinical.report import write_report
from medseg.apps.clinical.segment import read_segmentation, segment_with_run

__all__ = [
    "Atlas", "ClinicalConfigError", "ClinicalDataError", "ClinicalDatabaseError", "ClinicalError", "CoarseAtlas",
    "CrossCheck", "Diagnosis", "LabelMapAtlas", "Localisation", "MNIAtlas", "PatientInfo", "REASON_TEXT", "Region",
    "RegionOverlap", "Registration", "cross_check", "db", "describe", "diagnose", "localise", "make_atlas",
    "read_segmentation", "recommend", "regions_from_labels", "register_to_mni", "report_blocks", "segment_with_run",
    "symptom_regions", "write_coarse_atlas", "write_report",
]
