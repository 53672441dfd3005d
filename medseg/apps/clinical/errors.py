"""The clinical cross-check's exceptions (kinds of :mod:`medseg.errors`; table in :mod:`medseg.apps.clinical`)."""

from medseg.errors import ConfigError, DatabaseError, DataError, MedsegError


class ClinicalError(MedsegError):
    """Base of the clinical cross-check's errors (a problem the user can fix); see the module table."""


class ClinicalConfigError(ClinicalError, ConfigError):
    """A bad option or identifier (exit 2)."""


class ClinicalDataError(ClinicalError, DataError):
    """Bad or missing input data (exit 3)."""


class ClinicalDatabaseError(ClinicalError, DatabaseError):
    """The clinical database is unreachable or a load breaks its constraints (exit 5)."""

