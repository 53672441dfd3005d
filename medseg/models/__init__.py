"""Segmentation networks; every constructor takes ``in_channels`` and ``out_channels`` and returns logits.

* :mod:`~medseg.models.unet`: classic / residual U-Net, 2D/3D, ``same`` or ``valid`` padding.
* :mod:`~medseg.models.chained_unet`: U-Net chained to a residual U-Net (Francia et al. 2020).
* :mod:`~medseg.models.smp_factory`: segmentation_models.pytorch architectures with smp/timm encoders.
* :mod:`~medseg.models.hrnet`: HRNetV2 and DeepLabV3+ on timm HRNet encoders.
* :mod:`~medseg.models.fcn`: torchvision FCN-ResNet101.
* :mod:`~medseg.models.monai_nets`: MONAI SegResNet, UNETR, SwinUNETR.

The table of configs is in ``docs/components.md``.

The public names of the submodules are re-exported here and imported on first use
(``from medseg.models import ...``), so importing the package stays cheap.
"""

from typing import TYPE_CHECKING

from medseg._lazy import lazy_exports

_EXPORTS = {
    "DoubleConv": "medseg.models.blocks",
    "center_crop": "medseg.models.blocks",
    "conv_nd": "medseg.models.blocks",
    "dropout_layer": "medseg.models.blocks",
    "mirror_pad": "medseg.models.blocks",
    "norm_layer": "medseg.models.blocks",
    "ChainedUNet": "medseg.models.chained_unet",
    "FCN": "medseg.models.fcn",
    "DeepLabV3PlusHRNet": "medseg.models.hrnet",
    "HRNetV2": "medseg.models.hrnet",
    "segresnet": "medseg.models.monai_nets",
    "swinunetr": "medseg.models.monai_nets",
    "unetr": "medseg.models.monai_nets",
    "build_smp": "medseg.models.smp_factory",
    "load_encoder_weights": "medseg.models.smp_factory",
    "ResidualUNet": "medseg.models.unet",
    "UNet": "medseg.models.unet",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "ChainedUNet",
    "DeepLabV3PlusHRNet",
    "DoubleConv",
    "FCN",
    "HRNetV2",
    "ResidualUNet",
    "UNet",
    "build_smp",
    "center_crop",
    "conv_nd",
    "dropout_layer",
    "load_encoder_weights",
    "mirror_pad",
    "norm_layer",
    "segresnet",
    "swinunetr",
    "unetr",
]

if TYPE_CHECKING:  # the same names for type checkers
    from medseg.models.blocks import (
        DoubleConv,
        center_crop,
        conv_nd,
        dropout_layer,
        mirror_pad,
        norm_layer,
    )
    from medseg.models.chained_unet import (
        ChainedUNet,
    )
    from medseg.models.fcn import (
        FCN,
    )
    from medseg.models.hrnet import (
        DeepLabV3PlusHRNet,
        HRNetV2,
    )
    from medseg.models.monai_nets import (
        segresnet,
        swinunetr,
        unetr,
    )
    from medseg.models.smp_factory import (
        build_smp,
        load_encoder_weights,
    )
    from medseg.models.unet import (
        ResidualUNet,
        UNet,
    )
