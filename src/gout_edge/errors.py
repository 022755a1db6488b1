"""The one exception root of gout-edge and its small hierarchy.

Every expected failure is a ``GoutEdgeError``; the CLI turns it into a message on stderr and the
exit code of docs/design.md §8, never a traceback::

    GoutEdgeError                    exit 1  a check failed (verify, budget, parity, fidelity)
    ├── UsageError                   exit 2  options that do not fit together
    ├── InputError                   exit 3  bad input: a file, an image, a table, a checkpoint
    │   ├── CheckpointError                  a checkpoint that cannot be used (or carries code)
    │   └── DataError                        an index table or image with a problem
    ├── BundleError                  exit 4  a bundle that is invalid or has been tampered with
    │   └── BundleTamperedError              a file's hash or the signature does not match
    ├── BackendUnavailableError      exit 5  an inference engine missing on this device
    └── CaptureError                 exit 5  a capture device lost or missing

    any other exception              exit 70 (EX_SOFTWARE) an internal error, a bug: ``gout_edge.cli``
                                             prints one line naming a crash file that holds the
                                             traceback (``INTERNAL_ERROR_EXIT``)

Messages name the value, the rule it broke and the fix. They never contain patient identifiers,
and name files by their base name (folder names of a PACS export can be patient names).
"""

from __future__ import annotations

__all__ = [
    "INTERNAL_ERROR_EXIT",
    "BackendUnavailableError",
    "BundleError",
    "BundleTamperedError",
    "CaptureError",
    "CheckFailedError",
    "CheckpointError",
    "DataError",
    "GoutEdgeError",
    "InputError",
    "UsageError",
]


INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE of sysexits.h: not a GoutEdgeError, i.e. a bug


class GoutEdgeError(Exception):
    """Root of every expected gout-edge failure."""

    exit_code: int = 1


class CheckFailedError(GoutEdgeError):
    """A verification, parity, fidelity or budget check failed."""

    exit_code = 1


class UsageError(GoutEdgeError):
    exit_code = 2


class InputError(GoutEdgeError):
    exit_code = 3


class CheckpointError(InputError):
    pass


class DataError(InputError):
    pass


class BundleError(GoutEdgeError):
    exit_code = 4


class BundleTamperedError(BundleError):
    pass


class BackendUnavailableError(GoutEdgeError):
    exit_code = 5


class CaptureError(GoutEdgeError):
    exit_code = 5
