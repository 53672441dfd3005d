"""Exact resume and clean interrupts: :class:`ResumeCheckpoint` (in every Trainer) and the run's signals.

* Every optimiser step re-seeds the global random generators (torch, numpy, random) from ``(seed,
  global_step)``, so dropout, stochastic losses and anything else drawing from them are the same in a
  resumed run as in an uninterrupted one (Lightning restores weights, optimiser, scheduler and loop
  counters, but not the generators).
* ``every_n_train_steps``: also write ``checkpoints/last.ckpt`` every N optimiser steps, so a kill loses
  at most N steps instead of up to one epoch; training resumed from such a mid-epoch checkpoint is exact
  too (the loader skips the batches already trained, see :class:`medseg.data.datamodule.ResumableLoader`).
* SIGTERM / SIGINT (``timeout``, ``kill``, SLURM pre-emption, Ctrl-C) during training: the current batch
  finishes, ``last.ckpt`` is written (mid-epoch, resumable exactly), and the run stops; the pipeline marks
  the run folder interrupted and the command exits with 128 + the signal number. A second Ctrl-C stops at
  once. Under DDP (several processes) Lightning's own SIGTERM handling stops every rank at the next batch,
  and the run resumes from the last periodic checkpoint.
"""

from __future__ import annotations

import logging
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from medseg.data.samplers import item_seed
from medseg.errors import Interrupted

log = logging.getLogger(__name__)


class _SignalState:
    """What the process-wide handlers saw: the first signal, and whether a fit is running."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.in_fit = False
        self.checkpoint: str | None = None

    def reset(self) -> None:
        self.signum, self.in_fit, self.checkpoint = None, False, None


STATE = _SignalState()


def _handler(signum, frame) -> None:
    if STATE.signum is not None and signum == signal.SIGINT:
        raise KeyboardInterrupt  # second Ctrl-C: stop now
    first = STATE.signum is None
    STATE.signum = STATE.signum or int(signum)
    if first:
        log.warning("received %s: stopping after the current batch with a resumable checkpoint "
                    "(press Ctrl-C again to stop at once)", signal.Signals(signum).name)
    if not STATE.in_fit:
        raise Interrupted(signum)


@contextmanager
def interrupt_signals() -> Iterator[_SignalState]:
    """Handle SIGTERM and SIGINT for the duration of a run (main thread only; elsewhere a no-op)."""
    import threading

    STATE.reset()
    if threading.current_thread() is not threading.main_thread():
        yield STATE
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in old:
        signal.signal(s, _handler)
    try:
        yield STATE
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def fitting() -> Iterator[None]:
    """Within ``trainer.fit``: a signal asks for a graceful stop instead of raising at once."""
    STATE.in_fit = True
    try:
        yield
    finally:
        STATE.in_fit = False


def reseed_step(seed: int, step: int) -> None:
    """Seed torch (all devices), numpy and random from ``(seed, step)``."""
    s = item_seed(seed, step, 0x57E9)
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


class ResumeCheckpoint(L.Callback):
    """Reproducible random state per step, periodic ``last.ckpt`` and the graceful stop on a signal.

    Args:
        dirpath: the checkpoint folder (``<run dir>/checkpoints``).
        every_n_train_steps: also write ``last.ckpt`` every this many optimiser steps (``None``: only the
            end-of-epoch ``last.ckpt`` of ``callbacks.last_checkpoint``).
        seed: base of the per-step seeds.
    """

    def __init__(self, dirpath: str | Path, every_n_train_steps: int | None = None, seed: int = 0) -> None:
        if every_n_train_steps is not None and int(every_n_train_steps) < 1:
            raise ValueError(f"callbacks.checkpoint.every_n_train_steps must be >= 1 or null, got {every_n_train_steps}")
        self.dirpath = Path(dirpath)
        self.every_n = None if every_n_train_steps is None else int(every_n_train_steps)
        self.seed = int(seed)

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        reseed_step(self.seed, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            # no mid-epoch checkpoint after the last batch: Lightning would resume it past this epoch's
            # validation; the end-of-epoch checkpoint follows (or, on a signal, the epoch is redone)
            return
        stop = STATE.signum is not None
        if stop or (self.every_n and trainer.global_step % self.every_n == 0):
            if trainer.world_size == 1:  # under DDP all ranks would have to agree on the moment
                trainer.save_checkpoint(str(self.last_path), weights_only=False)
                STATE.checkpoint = str(self.last_path)
                if not stop:
                    log.debug("step %d: wrote %s", trainer.global_step, self.last_path)
        if stop:
            trainer._signal_connector.received_sigterm = True  # Lightning's own loops stop too
            if trainer.world_size == 1:
                log.warning("stopped at step %d; resumable checkpoint %s", trainer.global_step, self.last_path)
                raise SIGTERMException()

    def on_validation_batch_end(self, trainer, *args, **kwargs) -> None:
        if STATE.signum is not None:  # stop validating; resume redoes this epoch from the last checkpoint
            trainer._signal_connector.received_sigterm = True


__all__ = ["ResumeCheckpoint", "Interrupted", "interrupt_signals", "fitting", "reseed_step", "STATE"]
