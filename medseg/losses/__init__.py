"""Losses following the loss convention of :mod:`medseg.tasks` (logits in; float multi-hot targets for
binary/multi-label, integer class indices ``(B, 1, ...)`` for multi-class).

* :mod:`~medseg.losses.pixel`: BCE-with-logits (``pos_weight``), cross-entropy (class weights).
* :mod:`~medseg.losses.overlap`: soft Dice, IoU, Tversky, focal (MONAI; sigmoid or softmax by task).
* :mod:`~medseg.losses.nll`: NLL on LogSoftmax, fixed or stochastic class weights (Francia et al. 2020).
* :mod:`~medseg.losses.cldice`: soft-clDice (topology-aware, thin structures; MONAI).
* :mod:`~medseg.losses.compound`: weighted sums from config.
* :mod:`~medseg.losses.deep_supervision`: one loss over ``(main, aux...)`` outputs.

The public names of the submodules are re-exported here and imported on first use
(``from medseg.losses import ...``), so importing the package stays cheap.
"""

from typing import TYPE_CHECKING

from medseg._lazy import lazy_exports

_EXPORTS = {
    "WeightedSum": "medseg.losses.compound",
    "DeepSupervisionLoss": "medseg.losses.deep_supervision",
    "StochasticWeightedNLL": "medseg.losses.nll",
    "WeightedNLL": "medseg.losses.nll",
    "Focal": "medseg.losses.overlap",
    "SoftDice": "medseg.losses.overlap",
    "SoftIoU": "medseg.losses.overlap",
    "Tversky": "medseg.losses.overlap",
    "BCEWithLogits": "medseg.losses.pixel",
    "CrossEntropy": "medseg.losses.pixel",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "BCEWithLogits",
    "CrossEntropy",
    "DeepSupervisionLoss",
    "Focal",
    "SoftDice",
    "SoftIoU",
    "StochasticWeightedNLL",
    "Tversky",
    "WeightedNLL",
    "WeightedSum",
]

if TYPE_CHECKING:  # the same names for type checkers
    from medseg.losses.compound import (
        WeightedSum,
    )
    from medseg.losses.deep_supervision import (
        DeepSupervisionLoss,
    )
    from medseg.losses.nll import (
        StochasticWeightedNLL,
        WeightedNLL,
    )
    from medseg.losses.overlap import (
        Focal,
        SoftDice,
        SoftIoU,
        Tversky,
    )
    from medseg.losses.pixel import (
        BCEWithLogits,
        CrossEntropy,
    )
