"""medseg.callbacks

The public names of the submodules are re-exported here and imported on first use
(``from medseg.callbacks import ...``), so importing the package stays cheap.
"""

from typing import TYPE_CHECKING

from medseg._lazy import lazy_exports

_EXPORTS = {
    "EpochMetricsWriter": "medseg.callbacks.epoch_metrics",
    "WebhookNotifier": "medseg.callbacks.notify",
    "post_message": "medseg.callbacks.notify",
    "OptunaPruning": "medseg.callbacks.optuna_pruning",
    "PlainEpochLog": "medseg.callbacks.progress",
    "progress_callback": "medseg.callbacks.progress",
    "ResumeCheckpoint": "medseg.callbacks.resume",
    "fitting": "medseg.callbacks.resume",
    "interrupt_signals": "medseg.callbacks.resume",
    "reseed_step": "medseg.callbacks.resume",
    "WandbMedia": "medseg.callbacks.wandb_media",
    "mask_layers": "medseg.callbacks.wandb_media",
    "to_uint8_rgb": "medseg.callbacks.wandb_media",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "EpochMetricsWriter",
    "OptunaPruning",
    "PlainEpochLog",
    "ResumeCheckpoint",
    "WandbMedia",
    "WebhookNotifier",
    "fitting",
    "interrupt_signals",
    "mask_layers",
    "post_message",
    "progress_callback",
    "reseed_step",
    "to_uint8_rgb",
]

if TYPE_CHECKING:  # the same names for type checkers
    from medseg.callbacks.epoch_metrics import (
        EpochMetricsWriter,
    )
    from medseg.callbacks.notify import (
        WebhookNotifier,
        post_message,
    )
    from medseg.callbacks.optuna_pruning import (
        OptunaPruning,
    )
    from medseg.callbacks.progress import (
        PlainEpochLog,
        progress_callback,
    )
    from medseg.callbacks.resume import (
        ResumeCheckpoint,
        fitting,
        interrupt_signals,
        reseed_step,
    )
    from medseg.callbacks.wandb_media import (
        WandbMedia,
        mask_layers,
        to_uint8_rgb,
    )
