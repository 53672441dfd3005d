"""Segmentation networks; every constructor takes ``in_channels`` and ``out_channels`` and returns logits.

* :mod:`~medseg.models.unet`: classic / residual U-Net, 2D/3D, ``same`` or ``valid`` padding.
* :mod:`~medseg.models.chained_unet`: U-Net chained to a residual U-Net (Francia et al. 2020).
* :mod:`~medseg.models.smp_factory`: segmentation_models.pytorch architectures with smp/timm encoders.
* :mod:`~medseg.models.hrnet`: HRNetV2 and DeepLabV3+ on timm HRNet encoders.
* :mod:`~medseg.models.fcn`: torchvision FCN-ResNet101.
* :mod:`~medseg.models.monai_nets`: MONAI SegResNet, UNETR, SwinUNETR.

The table of configs is in ``docs/components.md``.
"""
