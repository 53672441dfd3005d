"""Optimiser and learning-rate schedule helpers (most optimisers come straight from torch/timm).

The public names of the submodules are re-exported here and imported on first use
(``from medseg.optim import ...``), so importing the package stays cheap.
"""

from typing import TYPE_CHECKING

from medseg._lazy import lazy_exports

_EXPORTS = {
    "cosine_with_warmup": "medseg.optim.schedulers",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "cosine_with_warmup",
]

if TYPE_CHECKING:  # the same names for type checkers
    from medseg.optim.schedulers import (
        cosine_with_warmup,
    )
