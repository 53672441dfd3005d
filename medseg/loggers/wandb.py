"""A ``WandbLogger`` that works with no account: offline unless an API key is configured.

Runs are grouped so that a dashboard reads like the experiment: sweep trials of one Optuna study share
a group (the study name, ``job_type=trial``, named ``trial_<n>``); the folds of a k-fold run share the
task's group (``job_type=fold``, named ``fold_<k>``); a plain run is ``job_type=train``.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)


def api_key_configured() -> bool:
    """``WANDB_API_KEY`` is set, or ``wandb login`` stored a key in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        rc = netrc.netrc(os.environ.get("NETRC") or None)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
    return rc.authenticators(host) is not None


def run_identity(task_name: str, fold: int | None = None, trial: Mapping[str, Any] | None = None,
                 group: str | None = None, job_type: str | None = None,
                 name: str | None = None) -> dict[str, str | None]:
    """``group``, ``job_type`` and ``name`` for a run, a fold or a sweep trial (explicit values win)."""
    if trial:
        ident = {"group": trial.get("study_name"), "job_type": "trial", "name": f"trial_{trial.get('number')}"}
    elif fold is not None:
        ident = {"group": task_name, "job_type": "fold", "name": f"fold_{fold}"}
    else:
        ident = {"group": task_name, "job_type": "train", "name": None}
    for key, value in (("group", group), ("job_type", job_type), ("name", name)):
        if value is not None:
            ident[key] = value
    return ident


def wandb_logger(save_dir: str, project: str = "medseg", task_name: str = "train", offline: bool | None = None,
                 fold: int | None = None, trial: Mapping[str, Any] | None = None, group: str | None = None,
                 job_type: str | None = None, name: str | None = None, log_model: bool | Literal["all"] = False,
                 **kwargs: Any):
    """Build a Lightning ``WandbLogger``.

    Args:
        offline: ``None``: offline unless :func:`api_key_configured` (or ``WANDB_MODE`` says otherwise);
            sync an offline run later with ``wandb sync <save_dir>/wandb/offline-run-*``.
        fold, trial: the data fold and the sweep trial (``optuna_trial``), for grouping.
        log_model: Lightning's own checkpoint upload (online runs only); prefer the ``log_model`` option of
            :class:`~medseg.callbacks.wandb_media.WandbMedia`, which also works offline.
        kwargs: passed to ``WandbLogger`` / ``wandb.init`` (``tags``, ``entity``, ``notes``, ...).
    """
    from lightning.pytorch.loggers import WandbLogger

    if offline is None:
        mode = os.environ.get("WANDB_MODE", "").lower()
        offline = mode in ("offline", "dryrun") or (mode != "online" and not api_key_configured())
    if offline and log_model:
        log.warning("wandb: Lightning cannot log checkpoints offline; use callbacks.wandb_media.log_model=true")
        log_model = False
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    ident: dict[str, Any] = dict(run_identity(task_name, fold, trial, group, job_type, name))
    log.info("wandb: %s run, project %s, group %s, job_type %s", "offline" if offline else "online", project,
             ident["group"], ident["job_type"])
    return WandbLogger(save_dir=save_dir, project=project, offline=bool(offline), log_model=log_model,
                       **ident, **kwargs)
