"""The Hydra plugin class ``MedsegOptunaSweeper`` (Hydra only discovers plugins in ``hydra_plugins``).

A thin adapter: it delegates to :class:`medseg.hparams_search.sweeper.OptunaStudySweeper`, imported lazily
so that Hydra's plugin scan at every start (which imports this module) stays cheap.
"""

# typing.List on purpose (the Sweeper interface style of Hydra plugins)
# ruff: noqa: UP006, UP035

from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class MedsegOptunaSweeper(Sweeper):
    """``hydra/sweeper=medseg_optuna``: forwards setup and sweep to :class:`OptunaStudySweeper`."""

    def __init__(self, **kwargs: Any) -> None:
        from medseg.hparams_search.sweeper import OptunaStudySweeper

        self.impl = OptunaStudySweeper(**kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.impl.sweep(arguments)
