"""DDP inside a Hydra multirun (sweep trials with ``trainer=ddp``).

Lightning's subprocess launcher starts ranks 1..N-1 by re-running ``sys.argv`` with ``hydra.run.dir``
pinned. In a multirun, ``sys.argv`` is the *sweep* command (``-m hparams_search=...``): every child would
start a sweep of its own and sample its own hyperparameters. :func:`patch_lightning_for_multirun` makes
the children run the trial's job instead: the job's own overrides (the sampled values included, so every
rank trains the same trial) with ``hydra.run.dir`` set to the job's output folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


def job_subprocess_cmd(local_rank: int) -> tuple[Sequence[str], str]:
    """The command (and cwd) that starts DDP rank ``local_rank`` of the current Hydra job."""
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hc = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    if hc.mode == RunMode.MULTIRUN:
        command += list(hc.overrides.task)
        # the child's overrides come from the trial; its config group choices and folder from the job
        command += [f"hydra.run.dir={hc.runtime.output_dir}"]
    else:
        command += sys.argv[1:] + [f'hydra.run.dir="{hc.run.dir}"']
    command += [f"hydra.job.name=train_ddp_process_{local_rank}", "hydra.output_subdir=null"]
    return command, get_original_cwd()


def patch_lightning_for_multirun() -> None:
    """Point Lightning's subprocess launcher at :func:`job_subprocess_cmd` when Hydra runs a multirun
    (no change in a single run, where Lightning's own command is right)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    import lightning.pytorch.strategies.launchers.subprocess_script as launcher

    launcher._hydra_subprocess_cmd = job_subprocess_cmd


#: what Lightning's subprocess launcher writes into the main process's environment
_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def ddp_run_scope() -> Iterator[None]:
    """Wrap ``trainer.fit`` so that several DDP runs can follow each other in one process (sweep trials).

    On entry, patches Lightning's child command for multiruns (:func:`patch_lightning_for_multirun`).
    On exit, destroys the process group Lightning leaves initialised, and restores the variables the
    launcher set (``LOCAL_RANK`` left behind makes the next trial believe an external launcher started
    it, and wait forever for ranks that never come). Rank 0's evaluation after ``fit`` needs no
    collective.
    """
    import torch.distributed as dist

    saved = {k: os.environ.get(k) for k in _LAUNCHER_ENV}
    patch_lightning_for_multirun()
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        if saved["LOCAL_RANK"] is None:  # this process launched the ranks: undo what the launcher set
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
