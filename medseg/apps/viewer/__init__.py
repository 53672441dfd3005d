"""``medseg-view``: a local web app to browse cases, compare runs and try a model (see docs/viewer.md)."""

from medseg.apps.viewer.cache import ByteLRU
from medseg.apps.viewer.cases import CaseStore, CaseView, pack_bits, unpack_bits
from medseg.apps.viewer.server import create_app, safe_file, sniff_upload
from medseg.apps.viewer.sources import Model, PackageModel, SourceError, load_packages, load_sources

__all__ = ["ByteLRU", "CaseStore", "CaseView", "Model", "PackageModel", "SourceError", "create_app", "load_packages", "load_sources",
           "pack_bits", "safe_file", "sniff_upload", "unpack_bits"]
