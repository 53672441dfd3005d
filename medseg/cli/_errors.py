"""One way for every ``medseg-*`` command to end on a problem the user can fix.

``@clean_errors("medseg-train")`` goes *under* ``@hydra.main`` (or around a plain ``main``): a
:class:`medseg.errors.MedsegError` becomes ``medseg-train: data error: <message>`` on stderr and
the error kind's exit status (see :mod:`medseg.errors`); no traceback unless ``MEDSEG_DEBUG=1`` or
``HYDRA_FULL_ERROR=1``. A run stopped by SIGTERM/SIGINT (:class:`medseg.errors.Interrupted`) exits
with 128 + the signal number (143, 130) after saying how to resume. Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from medseg.errors import ConfigError, Interrupted, MedsegError

F = TypeVar("F", bound=Callable[..., Any])

DEBUG_HINT = "(set MEDSEG_DEBUG=1 for the full traceback)"


def debug_enabled() -> bool:
    return any(os.environ.get(v, "").strip() not in ("", "0", "false") for v in ("MEDSEG_DEBUG", "HYDRA_FULL_ERROR"))


def report_error(prog: str, exc: MedsegError) -> int:
    """Print the one-paragraph message for ``exc`` and return its exit status."""
    print(f"{prog}: {exc.kind}: {exc}", file=sys.stderr)
    print(f"{prog}: {DEBUG_HINT}", file=sys.stderr)
    return exc.exit_code


def as_config_error(exc: BaseException) -> MedsegError | None:
    """A config value that a constructor rejected (Hydra's ``InstantiationException``), as a config error;
    the project's own error when it is the cause (e.g. a reader's ``DataError``). ``None`` otherwise."""
    try:
        from hydra.errors import InstantiationException
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(exc, InstantiationException):
        return None
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, MedsegError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, MedsegError):
        return cause
    if isinstance(exc.__cause__, (ValueError, TypeError, KeyError)):
        return ConfigError(str(exc).strip())
    return None


def clean_errors(prog: str) -> Callable[[F], F]:
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except MedsegError as exc:
                if debug_enabled():
                    raise
                sys.stdout.flush()
                sys.exit(report_error(prog, exc))
            except Exception as exc:
                known = as_config_error(exc)
                if known is None or debug_enabled():
                    raise
                sys.stdout.flush()
                sys.exit(report_error(prog, known))
            except Interrupted as exc:
                sys.stdout.flush()
                print(f"{prog}: {exc}", file=sys.stderr)
                if exc.run_dir:
                    how = (f"resume=true hydra.run.dir={exc.run_dir}" if exc.checkpoint
                           else f"hydra.run.dir={exc.run_dir}")
                    print(f"{prog}: the run folder is marked interrupted; to continue, rerun the same command "
                          f"with {how}", file=sys.stderr)
                sys.exit(exc.exit_code)
            except KeyboardInterrupt:  # Ctrl-C outside a training run (evaluation, prediction...)
                if debug_enabled():
                    raise
                sys.stdout.flush()
                print(f"{prog}: interrupted (SIGINT)", file=sys.stderr)
                sys.exit(130)

        return inner  # type: ignore[return-value]

    return wrap


__all__ = ["clean_errors", "debug_enabled", "report_error", "DEBUG_HINT"]
