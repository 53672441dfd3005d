"""medseg.utils

The public names of the submodules are re-exported here and imported on first use
(``from medseg.utils import ...``), so importing the package stays cheap.
"""

from typing import TYPE_CHECKING

from medseg._lazy import lazy_exports

_EXPORTS = {
    "AtomicCheckpointIO": "medseg.utils.checkpoint",
    "check_checkpoint_file": "medseg.utils.checkpoint",
    "checkpoint_error": "medseg.utils.checkpoint",
    "is_valid_checkpoint": "medseg.utils.checkpoint",
    "load_checkpoint": "medseg.utils.checkpoint",
    "save_atomic": "medseg.utils.checkpoint",
    "atomic_path": "medseg.utils.io",
    "read_image": "medseg.utils.io",
    "save_with": "medseg.utils.io",
    "write_json_atomic": "medseg.utils.io",
    "write_text_atomic": "medseg.utils.io",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "AtomicCheckpointIO",
    "atomic_path",
    "check_checkpoint_file",
    "checkpoint_error",
    "is_valid_checkpoint",
    "load_checkpoint",
    "read_image",
    "save_atomic",
    "save_with",
    "write_json_atomic",
    "write_text_atomic",
]

if TYPE_CHECKING:  # the same names for type checkers
    from medseg.utils.checkpoint import (
        AtomicCheckpointIO,
        check_checkpoint_file,
        checkpoint_error,
        is_valid_checkpoint,
        load_checkpoint,
        save_atomic,
    )
    from medseg.utils.io import (
        atomic_path,
        read_image,
        save_with,
        write_json_atomic,
        write_text_atomic,
    )
