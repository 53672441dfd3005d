"""OmegaConf resolvers of medseg's configs, registered when ``medseg`` is imported (configs composed by the
CLIs, by Hydra's compose API in tests, and by multirun sweepers before any job all see them)."""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def _under_run(run_dir: object, sub: str, fallback: str) -> str:
    """``${medseg_under_run:${run_dir},predict,<fallback>}``: ``<run_dir>/predict`` when a run folder is
    given, else the fallback (``medseg-predict package=...`` has no run folder)."""
    return f"{run_dir}/{sub}" if run_dir not in (None, "", "None") else str(fallback)


if not OmegaConf.has_resolver("medseg_under_run"):
    OmegaConf.register_new_resolver("medseg_under_run", _under_run)
def _cwd() -> str:
    """``${medseg_cwd:}``: Hydra's ``runtime.cwd`` where it is set, else the working directory. Hydra's
    basic multirun sweeper resolves ``hydra.sweep.dir`` before any job exists, where
    ``${hydra:runtime.cwd}`` (and so ``paths.log_dir``) cannot be resolved."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.cwd)
    return os.getcwd()


if not OmegaConf.has_resolver("medseg_cwd"):
    OmegaConf.register_new_resolver("medseg_cwd", _cwd)
