"""The unit directory: every unit's code, name, place in the hierarchy, delivery mode,
endpoint, status and pinned certificates, read from a CSV file and cached."""

from gateway.directory.load import (
    SAMPLE_PATH,
    DirectoryInvalid,
    load_directory,
    normalise_fingerprint,
    parse_directory,
)
from gateway.directory.model import DeliveryMode, Directory, Unit, UnitStatus

__all__ = [
    "SAMPLE_PATH",
    "DeliveryMode",
    "Directory",
    "DirectoryInvalid",
    "Unit",
    "UnitStatus",
    "load_directory",
    "normalise_fingerprint",
    "parse_directory",
]
