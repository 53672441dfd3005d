"""medseg: medical image segmentation with Lightning and Hydra.

Importing the package sets ``NO_ALBUMENTATIONS_UPDATE=1`` (albumentations otherwise checks
PyPI for updates on import, which waits and warns on machines without network).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from medseg import _resolvers  # noqa: E402,F401  (config resolvers: medseg_cwd, medseg_under_run)

__version__ = "0.1.0"
