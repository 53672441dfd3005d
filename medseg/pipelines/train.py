"""Train, then evaluate the best checkpoint on the held-out split and write the run folder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from medseg.callbacks.evaluation import EvaluationCallback
from medseg.callbacks.resume import STATE, Interrupted, fitting, interrupt_signals
from medseg.data.datamodule import SegmentationDataModule
from medseg.errors import CheckpointError, ConfigError
from medseg.evaluation import PREDICTIONS, EvaluationTable
from medseg.metrics import metrics_from_config
from medseg.module import SegmentationModule
from medseg.pipelines.build import build_datamodule, build_module, build_trainer, load_weights
from medseg.pipelines.eval import evaluate_split, run_source
from medseg.utils.checkpoint import checkpoint_error, load_checkpoint
from medseg.utils.distributed import ddp_run_scope
from medseg.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


STATUS = "status.json"
INTERRUPTED = "INTERRUPTED"


def _is_rank_zero() -> bool:
    """This process is rank 0 (Lightning sets ``rank_zero_only.rank`` from the launcher's environment)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def write_status(run_dir: Path, state: str, **extra) -> None:
    """``<run_dir>/status.json``: ``running``, ``interrupted``, ``failed`` or ``complete`` (rank 0 only).
    An interrupted run also gets an ``INTERRUPTED`` file saying how to resume; both are replaced when the
    run is resumed, and a completed run writes ``results.json`` last."""
    if not _is_rank_zero():
        return
    write_json_atomic(run_dir / STATUS, {"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra})
    marker = run_dir / INTERRUPTED
    if state == "interrupted":
        write_text_atomic(marker, f"{extra.get('reason', 'interrupted')}\nresume: {extra.get('resume', '')}\n")
    elif marker.exists():
        marker.unlink()


def _candidates(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    found = list(folder.glob("*.ckpt")) if folder.is_dir() else []
    found += list(run_dir.glob("hpc_ckpt_*.ckpt"))  # Lightning's SLURM requeue checkpoints
    return found


def _progress(state: dict) -> tuple[int, int]:
    return int(state.get("global_step", -1)), int(state.get("epoch", -1))


def _started(run_dir: Path) -> bool:
    """Whether a training run was started in ``run_dir`` (not only configured)."""
    return any((run_dir / f).exists() for f in (STATUS, "metrics.csv", "checkpoints"))


def find_resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """``resume: true`` continues from ``<run_dir>/checkpoints/last.ckpt``; ``resume: <path>`` from that
    checkpoint.

    A ``last.ckpt`` that is unreadable (truncated, corrupt, refused) is skipped with a warning for the
    most advanced readable checkpoint of the run (the best one, a SLURM ``hpc_ckpt_*``); when the run
    folder has checkpoints but none is usable, or ``resume`` names an unusable file, this is a
    :class:`CheckpointError`. A folder where a run started but wrote no checkpoint yet (stopped in its
    first epoch) trains from scratch, saying so."""
    resume = cfg.get("resume")
    if not resume:
        return None
    if resume is True or str(resume).lower() == "true":
        last = run_dir / "checkpoints" / "last.ckpt"
        problems = []
        if last.exists():
            err = checkpoint_error(last)
            if err is None:
                return str(last)
            problems.append(err)
        usable = []
        for path in _candidates(run_dir):
            if path == last:
                continue
            try:
                state = load_checkpoint(path)
            except CheckpointError as exc:
                problems.append(str(exc))
                continue
            if "loops" not in state:
                problems.append(f"{path}: holds weights only, no training state")
                continue
            usable.append((_progress(state), path.stat().st_mtime, path))
        if usable:
            (step, epoch), _, path = max(usable)
            log.warning("resume: %s; continuing from %s instead (epoch %d, step %d): the work after it is redone",
                        problems[0] if problems else f"{last}: not found", path, epoch, step)
            return str(path)
        if problems:
            raise CheckpointError(
                f"{run_dir}: resume=true, but no checkpoint of this run is usable: " + " | ".join(problems[:3])
                + ". Delete the run folder's checkpoints/ to train again from scratch, or pass "
                "resume=<path of a good .ckpt>")
        if _started(run_dir):
            log.warning("resume: %s has a started run but no checkpoint yet (it stopped before the first "
                        "save): training from scratch", run_dir)
        return None
    path = Path(str(resume)).expanduser()
    err = checkpoint_error(path)
    if err is not None:
        raise CheckpointError(f"resume={resume}: {err}")
    return str(path)


def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, float]:
    """Run one experiment end to end. Returns the test metrics (means over images) and
    ``val/best_dice`` (also with ``evaluate: false``); an empty dict on DDP ranks other than 0.

    The run folder's ``status.json`` says ``running``, then ``complete`` (``results.json`` is written
    last), ``failed`` (with the error) or ``interrupted`` (SIGTERM/SIGINT: :class:`Interrupted` is raised
    after a resumable checkpoint was written; resume with ``resume=true`` and the same folder)."""
    run_dir = Path(run_dir)
    with interrupt_signals():
        try:
            return _train(cfg, run_dir)
        except BaseException as exc:
            # ours, Lightning's own stop (SIGTERMException) or a KeyboardInterrupt after a signal
            signum = exc.signum if isinstance(exc, Interrupted) else STATE.signum
            if signum is not None:
                ckpt = STATE.checkpoint or _existing(run_dir / "checkpoints" / "last.ckpt")
                _mark_interrupted(run_dir, signum, ckpt)
                raise Interrupted(signum, run_dir, ckpt) from None
            if isinstance(exc, Exception):
                write_status(run_dir, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            raise


def _existing(path: Path) -> str | None:
    return str(path) if path.exists() else None


def _mark_interrupted(run_dir: Path, signum: int, ckpt: str | None) -> None:
    import signal as _signal

    name = _signal.Signals(signum).name
    how = (f"resume=true hydra.run.dir={run_dir}" if ckpt else
           f"rerun with hydra.run.dir={run_dir} (no checkpoint was written yet: it starts from scratch)")
    write_status(run_dir, "interrupted", signal=name, checkpoint=ckpt, reason=f"interrupted by {name}",
                 resume=how)


def _train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """fit -> evaluate the best checkpoint on the test split (table, report) -> results, hooks, status."""
    t0 = time.perf_counter()
    ckpt = find_resume_checkpoint(cfg, run_dir)  # first: a bad resume request stops before any work
    ckpt = ckpt or sweep_retry_checkpoint(cfg, run_dir)
    write_status(run_dir, "running", **({"resumed_from": ckpt} if ckpt else {}))
    trainer, module, dm = _fit(cfg, run_dir, ckpt)
    if not trainer.is_global_zero:  # DDP: only rank 0 evaluates and writes
        return {}
    table = _evaluate_best(cfg, run_dir, trainer, module, dm) if cfg.get("evaluate", True) else None
    results = table.summary() if table is not None else {}
    # the kept checkpoint's validation score, also without a test evaluation (what sweeps optimise)
    results["val/best_dice"] = _kept_score(trainer, str(cfg.get("monitor", "val/dice")))
    _announce(trainer, run_dir, results, table)
    write_status(run_dir, "complete", **({"resumed_from": ckpt} if ckpt else {}))
    write_json_atomic(run_dir / "results.json", results)  # last: its presence means the run is complete
    log.info("finished in %.1f s; results in %s", time.perf_counter() - t0, run_dir)
    return results


def _check_validation(cfg: DictConfig, dm: SegmentationDataModule) -> None:
    """A run without validation images (``data.val_fraction=0``) must not select or schedule by a
    validation metric."""
    if dm.splits.get("val"):
        return
    keys = [f"callbacks.{name}.monitor" for name, cb in (cfg.get("callbacks") or {}).items()
            if isinstance(cb, DictConfig) and cb.get("monitor")]
    if "ReduceLROnPlateau" in str((cfg.get("scheduler") or {}).get("_target_", "")):
        keys.append("scheduler (ReduceLROnPlateau)")
    if keys:
        raise ConfigError(f"no validation images (data.val_fraction=0 or an empty val split), but {', '.join(keys)} "
                          "needs a validation metric: keep the final weights with callbacks.model_checkpoint.monitor=null "
                          "(as experiment=drive_unet does), or give validation images")


def _kept_score(trainer: L.Trainer, monitor: str) -> float:
    """The validation ``monitor`` of the checkpoint the run keeps: the best one's, or with
    ``callbacks.model_checkpoint.monitor=null`` (the run keeps its final weights, e.g. ``experiment=drive_unet``)
    the last validation's; NaN when nothing was validated."""
    score = getattr(trainer.checkpoint_callback, "best_model_score", None)
    if score is None:
        score = trainer.callback_metrics.get(monitor)
    return float(score) if score is not None else float("nan")


def _fit(cfg: DictConfig, run_dir: Path, ckpt: str | None) -> tuple[L.Trainer, SegmentationModule,
                                                                    SegmentationDataModule]:
    """Build the data, model and trainer, and fit (from ``ckpt`` when resuming)."""
    L.seed_everything(cfg.seed, workers=True)
    dm = build_datamodule(cfg)
    _check_validation(cfg, dm)
    if _is_rank_zero():
        write_json_atomic(run_dir / "splits.json", dm.splits)
    module = build_module(cfg, dm)
    trainer = build_trainer(cfg, run_dir)
    if ckpt:
        log.info("resuming from %s", ckpt)
    with ddp_run_scope(), fitting():  # DDP ranks of a sweep trial run that trial; the next trial starts clean
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    if STATE.signum is not None:  # a stop Lightning turned into a normal end of fit
        raise Interrupted(STATE.signum)
    return trainer, module, dm


def _evaluate_best(cfg: DictConfig, run_dir: Path, trainer: L.Trainer, module: SegmentationModule,
                   dm: SegmentationDataModule) -> EvaluationTable:
    """Score the best checkpoint (the last weights without one) on the test split into ``run_dir``."""
    best = str(getattr(trainer.checkpoint_callback, "best_model_path", "") or "")
    if best:
        load_weights(module, best)
        log.info("evaluating best checkpoint %s", best)
    tta = cfg.get("tta") or False
    return evaluate_split(module, dm, run_dir, split="test", baseline=dm.baseline,
                          title=f"{cfg.task_name}: test report" + (" (TTA)" if tta else ""), tta=tta,
                          metrics=metrics_from_config(cfg),
                          predictions_dir=run_dir / PREDICTIONS if cfg.get("save_predictions", True) else None,
                          source=run_source(run_dir, best or "last weights"))


def _announce(trainer: L.Trainer, run_dir: Path, results: dict[str, float], table: EvaluationTable | None) -> None:
    """The results to every logger, then to every :class:`EvaluationCallback` (e.g. WandbMedia logs
    the tables; WebhookNotifier posts the result)."""
    for lg in trainer.loggers:
        lg.log_metrics(results, step=trainer.global_step)
    for cb in getattr(trainer, "callbacks", []):  # Trainer.callbacks: set in __init__, not declared
        if isinstance(cb, EvaluationCallback):
            cb.on_evaluation_end(trainer, run_dir, results, table)


def sweep_retry_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """A sweep trial that re-runs a killed one (same parameters, Optuna's retry of a stale trial)
    continues from the killed trial's ``last.ckpt`` instead of starting again."""
    tag = cfg.get("optuna_trial")
    if not tag or cfg.get("resume") or not _is_rank_zero():
        return None
    devices = cfg.trainer.get("devices", 1)
    if "ddp" in str(cfg.trainer.get("strategy", "")) or not (isinstance(devices, int) and devices == 1):
        return None  # every rank would have to resume from the same file: DDP trials start again
    try:
        from medseg.hparams_search.study import retried_run_dirs

        for folder in retried_run_dirs(tag, run_dir):
            last = Path(folder) / "checkpoints" / "last.ckpt"
            if last.exists() and checkpoint_error(last) is None:
                log.info("sweep trial %s retries a killed trial: continuing from %s", tag.get("number"), last)
                return str(adopt_checkpoints(last, run_dir / "checkpoints"))
    except Exception as exc:  # the study is optional for this: a failure here only loses the head start
        log.warning("sweep trial: could not look up the trial it retries (%s); training from scratch", exc)
    return None


def adopt_checkpoints(last: Path, folder: Path) -> Path:
    """Copy the checkpoints next to ``last`` into ``folder`` and point the copied ``last.ckpt``'s
    ``ModelCheckpoint`` state at them: Lightning reloads the best score and top-k of a checkpoint only
    when it was saved in the same folder, and a sweep trial optimises that best score."""
    import shutil

    from medseg.utils.checkpoint import save_atomic

    src = last.parent.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.ckpt"):
        if f.name != last.name:
            shutil.copy2(f, folder / f.name)
    old, new = str(src), str(folder.resolve())

    def moved(v):
        if isinstance(v, str):
            return v.replace(old, new, 1) if v.startswith(old) else v
        if isinstance(v, dict):
            return {moved(k): moved(x) for k, x in v.items()}
        return v

    state = load_checkpoint(last)
    for key, cb_state in (state.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and isinstance(cb_state, dict):
            state["callbacks"][key] = moved(cb_state)
    return save_atomic(state, folder / "last.ckpt")
