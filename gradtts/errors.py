"""The base class of errors that mean bad input rather than a bug.

A command line shows such an error as one ``gradtts-<cmd>: error: ...`` line and exits with status 2
(:func:`gradtts.config.cli_errors`). Errors of every layer derive from it, so the lowest layer can
recognise them without importing the layers above.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input (a file, an option value, a stored output made otherwise); the message says what to do."""
