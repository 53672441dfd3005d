"""The Hydra-facing sweeper class (Hydra only instantiates plugins from ``hydra_plugins``).

It delegates to :class:`medseg.sweep.sweeper.MedsegOptunaSweeper`, imported lazily so that Hydra's
plugin scan at every start stays cheap.
"""

# typing.List on purpose (the Sweeper interface style of Hydra plugins)
# ruff: noqa: UP006, UP035

from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class MedsegOptunaSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        from medseg.sweep.sweeper import MedsegOptunaSweeper as Impl

        self.impl = Impl(**kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.impl.sweep(arguments)
