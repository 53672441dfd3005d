"""Train, then evaluate the best checkpoint on the held-out split and write the run folder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from medseg.pipelines.build import build_datamodule, build_module, build_trainer, load_weights
from medseg.pipelines.evaluate import evaluate_split, summary_dict
from medseg.sweep.ddp import ddp_run_scope
from medseg.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def find_resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """``resume: true`` continues from ``<run_dir>/checkpoints/last.ckpt`` when it exists;
    ``resume: <path>`` from that checkpoint."""
    resume = cfg.get("resume")
    if not resume:
        return None
    if resume is True or str(resume).lower() == "true":
        last = run_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.exists() else None
    path = Path(str(resume))
    if not path.exists():
        raise FileNotFoundError(f"{path}: resume checkpoint not found")
    return str(path)


def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, float]:
    """Run one experiment end to end. Returns the test metrics (means over images) and
    ``val/best_dice`` (also with ``evaluate: false``); an empty dict on DDP ranks other than 0."""
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)
    dm = build_datamodule(cfg)
    if rank_zero_only.rank == 0:
        write_json_atomic(run_dir / "splits.json", dm.splits)
    module = build_module(cfg, dm)
    trainer = build_trainer(cfg, run_dir)
    ckpt = find_resume_checkpoint(cfg, run_dir)
    if ckpt:
        log.info("resuming from %s", ckpt)
    with ddp_run_scope():  # DDP ranks of a sweep trial run that trial; the next trial starts clean
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)

    results: dict[str, float] = {}
    if not trainer.is_global_zero:  # DDP: only rank 0 evaluates and writes
        return results
    cb = trainer.checkpoint_callback
    best_score = cb.best_model_score if cb is not None else None
    if cfg.get("evaluate", True):
        best = cb.best_model_path if cb else ""
        if best:
            load_weights(module, best)
            log.info("evaluating best checkpoint %s", best)
        tta = cfg.get("tta") or False
        per_image = evaluate_split(module, dm, run_dir, split="test", baseline=dm.baseline,
                                   title=f"{cfg.task_name}: test report" + (" (TTA)" if tta else ""),
                                   tta=tta)
        results = summary_dict(per_image)
    # the best validation score is returned even without a test evaluation (what sweeps optimise)
    results["val/best_dice"] = float(best_score) if best_score is not None else float("nan")
    write_json_atomic(run_dir / "results.json", results)
    for lg in trainer.loggers:
        lg.log_metrics(results, step=trainer.global_step)
    for cb in trainer.callbacks:  # e.g. WandbMedia logs the tables; WebhookNotifier posts the result
        hook = getattr(cb, "on_evaluation_end", None)
        if callable(hook):
            hook(trainer, run_dir, results)
    log.info("finished in %.1f s; results in %s", time.perf_counter() - t0, run_dir)
    return results
