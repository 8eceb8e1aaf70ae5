"""User-facing errors.

Anything a user can cause (a bad file, a bad option) raises :class:`RefocusError`
with a one-line message; the CLI prints it and exits with a non-zero code instead
of showing a traceback.
"""


class RefocusError(Exception):
    """An error caused by the input or the options, with a one-line message."""

    exit_code = 2


def describe_os_error(exc: OSError, path=None, verb: str = "access") -> str:
    """One line for a file-system fault: the user's path and the cause.

    ``path`` is the path the user gave (a temporary file's name means nothing to them);
    without it, the path the error names.
    """
    import errno

    target = path if path is not None else (exc.filename or "")
    cause = exc.strerror or (str(exc).splitlines() or [""])[0] or exc.__class__.__name__
    hints = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the disk is read-only",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENOENT: "the folder does not exist",
        errno.EACCES: "permission denied",
        errno.EPERM: "not permitted",
    }
    if verb != "write":
        hints.pop(errno.ENOENT)  # reading: the file itself may be what is missing
    hint = hints.get(exc.errno)
    if hint and hint.lower() != cause.lower():
        cause = f"{cause} ({hint})"
    return f"cannot {verb} {target}: {cause}" if target else f"file system error: {cause}"


class DiskError(RefocusError):
    """A file could not be written (full or read-only disk, missing folder...): exit 2."""
