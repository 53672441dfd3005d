"""Losses following the loss convention of :mod:`medseg.tasks` (logits in; float multi-hot targets for
binary/multi-label, integer class indices ``(B, 1, ...)`` for multi-class).

* :mod:`~medseg.losses.pixel`: BCE-with-logits (``pos_weight``), cross-entropy (class weights).
* :mod:`~medseg.losses.overlap`: soft Dice, IoU, Tversky, focal (MONAI; sigmoid or softmax by task).
* :mod:`~medseg.losses.nll`: NLL on LogSoftmax, fixed or stochastic class weights (Francia et al. 2020).
* :mod:`~medseg.losses.cldice`: soft-clDice (topology-aware, thin structures; MONAI).
* :mod:`~medseg.losses.compound`: weighted sums from config.
* :mod:`~medseg.losses.deep_supervision`: one loss over ``(main, aux...)`` outputs.
"""
