"""medseg.inference: whole-image inference (inferers, TTA, ensembles, post-processing, writers)

The public names of the submodules are re-exported here and imported on first use
(``from medseg.inference import ...``), so importing the package stays cheap.
"""

from typing import TYPE_CHECKING

from medseg._lazy import lazy_exports

_EXPORTS = {
    "combine": "medseg.inference.ensemble",
    "fit_weights": "medseg.inference.ensemble",
    "active_rules": "medseg.inference.postprocess",
    "apply_rule": "medseg.inference.postprocess",
    "check_rules": "medseg.inference.postprocess",
    "component_sizes": "medseg.inference.postprocess",
    "describe_rule": "medseg.inference.postprocess",
    "describe_rules": "medseg.inference.postprocess",
    "keep_largest": "medseg.inference.postprocess",
    "postprocess": "medseg.inference.postprocess",
    "remove_small": "medseg.inference.postprocess",
    "DEFAULT_SIZE_DIVISOR": "medseg.inference.inferers",
    "PadToMultipleInferer": "medseg.inference.inferers",
    "ResizeInferer": "medseg.inference.inferers",
    "make_inferer": "medseg.inference.inferers",
    "net_size_divisor": "medseg.inference.inferers",
    "pad_run_crop": "medseg.inference.inferers",
    "read_rle_csv": "medseg.inference.rle",
    "rle_decode": "medseg.inference.rle",
    "rle_encode": "medseg.inference.rle",
    "write_rle_csv": "medseg.inference.rle",
    "Selection": "medseg.inference.selected",
    "tta_probs": "medseg.inference.tta",
    "tta_transforms": "medseg.inference.tta",
    "brats_labels_from_regions": "medseg.inference.writers",
    "case_affine": "medseg.inference.writers",
    "label_map": "medseg.inference.writers",
    "nnunet_labels": "medseg.inference.writers",
    "to_source_grid": "medseg.inference.writers",
    "write_nifti": "medseg.inference.writers",
    "write_nifti_labels": "medseg.inference.writers",
    "write_nnunet_prediction": "medseg.inference.writers",
    "write_png_mask": "medseg.inference.writers",
    "write_probabilities": "medseg.inference.writers",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "DEFAULT_SIZE_DIVISOR",
    "PadToMultipleInferer",
    "ResizeInferer",
    "make_inferer",
    "net_size_divisor",
    "Selection",
    "active_rules",
    "apply_rule",
    "brats_labels_from_regions",
    "case_affine",
    "check_rules",
    "combine",
    "component_sizes",
    "describe_rule",
    "describe_rules",
    "fit_weights",
    "keep_largest",
    "label_map",
    "nnunet_labels",
    "pad_run_crop",
    "postprocess",
    "read_rle_csv",
    "remove_small",
    "rle_decode",
    "rle_encode",
    "to_source_grid",
    "tta_probs",
    "tta_transforms",
    "write_nifti",
    "write_nifti_labels",
    "write_nnunet_prediction",
    "write_png_mask",
    "write_probabilities",
    "write_rle_csv",
]

if TYPE_CHECKING:  # the same names for type checkers
    from medseg.inference.ensemble import (
        combine,
        fit_weights,
    )
    from medseg.inference.inferers import (
        DEFAULT_SIZE_DIVISOR,
        PadToMultipleInferer,
        ResizeInferer,
        make_inferer,
        net_size_divisor,
        pad_run_crop,
    )
    from medseg.inference.postprocess import (
        active_rules,
        apply_rule,
        check_rules,
        component_sizes,
        describe_rule,
        describe_rules,
        keep_largest,
        postprocess,
        remove_small,
    )
    from medseg.inference.rle import (
        read_rle_csv,
        rle_decode,
        rle_encode,
        write_rle_csv,
    )
    from medseg.inference.selected import (
        Selection,
    )
    from medseg.inference.tta import (
        tta_probs,
        tta_transforms,
    )
    from medseg.inference.writers import (
        brats_labels_from_regions,
        case_affine,
        label_map,
        nnunet_labels,
        to_source_grid,
        write_nifti,
        write_nifti_labels,
        write_nnunet_prediction,
        write_png_mask,
        write_probabilities,
    )
