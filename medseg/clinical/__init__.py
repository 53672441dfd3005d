"""Clinical cross-check of a brain-tumour segmentation (research software, not a diagnosis).

Flow: segmentation -> :mod:`~medseg.clinical.localise` (volumes, centroid, hemisphere, atlas regions
from :mod:`~medseg.clinical.regions`) -> :mod:`~medseg.clinical.db` (patient, symptoms, knowledge
table, hospitals) -> :mod:`~medseg.clinical.crosscheck` (agreement, confirmed regions,
recommendations) -> :mod:`~medseg.clinical.report`. :func:`medseg.clinical.flow.diagnose` runs it all.
"""

from medseg.errors import DataError


class ClinicalError(DataError):
    """A problem the user can fix (missing patient, empty segmentation, missing modality...).

    The CLI prints its message instead of a traceback.
    """


__all__ = ["ClinicalError"]
