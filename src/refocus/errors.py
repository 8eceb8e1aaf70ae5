"""User-facing errors.

Anything a user can cause (a bad file, a bad option) raises :class:`RefocusError`
with a one-line message; the CLI prints it and exits with a non-zero code instead
of showing a traceback.
"""


class RefocusError(Exception):
    """An error caused by the input or the options, with a one-line message."""

    exit_code = 2
