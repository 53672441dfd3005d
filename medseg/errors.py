"""The project's exceptions, one module at the bottom of the layers (everything may import it).

Each error the user can fix has a kind and a distinct exit status; ``medseg.cli`` turns them into a
short message on stderr (no traceback unless ``MEDSEG_DEBUG=1`` or ``HYDRA_FULL_ERROR=1``).

=========================  ====  ============================================================
exception                  exit  meaning
=========================  ====  ============================================================
:class:`MedsegError`       1     base class (any other problem the user can fix)
:class:`ConfigError`       2     a config key or value is wrong or missing
:class:`DataError`         3     input data: a file is missing, unreadable or inconsistent
:class:`CheckpointError`   4     a checkpoint or exported package is missing, corrupt or refused
:class:`DatabaseError`     5     the clinical database is unreachable or inconsistent
interrupted (signal N)     128+N SIGINT 130, SIGTERM 143: the run folder is marked interrupted
=========================  ====  ============================================================
"""

from __future__ import annotations

import os


class MedsegError(Exception):
    """A problem the user can fix. The message names the file or key, what is wrong and what to do."""

    exit_code: int = 1
    kind: str = "error"


class ConfigError(MedsegError, ValueError):
    """A config key or value is wrong, missing or inconsistent (name the key and the fix)."""

    exit_code = 2
    kind = "config error"


class DataError(MedsegError, ValueError):
    """Bad input data. The message always names the offending file or case and the problem."""

    exit_code = 3
    kind = "data error"


class CheckpointError(MedsegError):
    """A checkpoint (or exported package) is missing, truncated, corrupt or refused as unsafe."""

    exit_code = 4
    kind = "checkpoint error"


class DatabaseError(MedsegError):
    """The clinical database cannot be reached or holds inconsistent data."""

    exit_code = 5
    kind = "database error"


class Interrupted(BaseException):
    """The run was stopped by a signal; :mod:`medseg.cli._errors` exits with ``128 + signum``.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that no ``except Exception`` on the way, Hydra's
    multirun job wrapper included, takes it for a failed job and carries on."""

    def __init__(self, signum: int, run_dir: str | os.PathLike | None = None, checkpoint: str | None = None) -> None:
        self.signum, self.run_dir, self.checkpoint = int(signum), run_dir, checkpoint
        import signal

        name = signal.Signals(self.signum).name if self.signum in signal.Signals._value2member_map_ else str(signum)
        where = f" in {run_dir}" if run_dir else ""
        ckpt = f"; resumable checkpoint {checkpoint}" if checkpoint else ""
        super().__init__(f"run interrupted by {name}{where}{ckpt}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


EXIT_CODES: dict[str, int] = {
    "MedsegError": MedsegError.exit_code,
    "ConfigError": ConfigError.exit_code,
    "DataError": DataError.exit_code,
    "CheckpointError": CheckpointError.exit_code,
    "DatabaseError": DatabaseError.exit_code,
    "Interrupted": 128,  # + the signal number
}

__all__ = ["MedsegError", "ConfigError", "DataError", "CheckpointError", "DatabaseError", "Interrupted", "EXIT_CODES"]
