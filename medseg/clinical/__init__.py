"""Clinical cross-check of a brain-tumour segmentation (research software, not a diagnosis).

Flow: segmentation -> :mod:`~medseg.clinical.register` (affine registration of the case to the MNI152
brain) -> :mod:`~medseg.clinical.localise` (volumes, centroid, hemisphere, atlas regions from
:mod:`~medseg.clinical.mni` or :mod:`~medseg.clinical.regions`) -> :mod:`~medseg.clinical.db` (patient,
symptoms, knowledge table, hospitals) -> :mod:`~medseg.clinical.crosscheck` (agreement, confirmed regions,
recommendations) -> :mod:`~medseg.clinical.report`. :func:`medseg.clinical.flow.diagnose` runs it all.

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

All three derive from :class:`ClinicalError`, so ``except ClinicalError`` catches any of them.
"""

from medseg.errors import ConfigError, DatabaseError, DataError, MedsegError


class ClinicalError(MedsegError):
    """Base of the clinical cross-check's errors (a problem the user can fix); see the module table."""


class ClinicalConfigError(ClinicalError, ConfigError):
    """A bad option or identifier (exit 2)."""


class ClinicalDataError(ClinicalError, DataError):
    """Bad or missing input data (exit 3)."""


class ClinicalDatabaseError(ClinicalError, DatabaseError):
    """The clinical database is unreachable or a load breaks its constraints (exit 5)."""


__all__ = ["ClinicalError", "ClinicalConfigError", "ClinicalDataError", "ClinicalDatabaseError"]
