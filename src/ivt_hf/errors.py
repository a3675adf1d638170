"""The package's own error types: what a user can fix (bad input), as opposed to a bug.

`ivt` (`ivt_hf.cli`) turns these into one `error: ...` line and exit code 2; any other exception keeps its
traceback, because it is a bug to report. Every class here is a `ValueError` (the file errors are also the matching
built-in `FileNotFoundError` / `FileExistsError`), so code that catches those keeps working.

The base class, `IVTInputError`, is defined in `model/configuration_ivt.py`: the model files travel with the weights
and must stay self-contained, yet refuse bad values and images with the same type as the rest of the package.
"""

from __future__ import annotations

from .model.configuration_ivt import IVTInputError


class InputNotFoundError(IVTInputError, FileNotFoundError):
    """A file, folder, checkpoint or repository the user named does not exist."""


class OutputExistsError(IVTInputError, FileExistsError):
    """An output folder already holds something that the command will not replace."""


__all__ = ["IVTInputError", "InputNotFoundError", "OutputExistsError"]
