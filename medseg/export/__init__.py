"""Deployable packages: exported networks, a standalone runner, a model card and checksums."""

from medseg.export.runner import FORMAT_VERSION, InputError, Model, PackageError, verify_package

__all__ = ["FORMAT_VERSION", "InputError", "Model", "PackageError", "verify_package"]
