"""User-facing errors.

Library code raises :class:`HnanasError` for bad input (a missing file, a wrong key, a table for another
space). The CLI prints its message as one line and exits with status 2; nothing else is caught, so real bugs
still show a traceback.
"""

from __future__ import annotations

import errno


class HnanasError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""

    exit_code = 2


class DataError(HnanasError):
    """A dataset file is missing, unreadable or inconsistent."""


class ConfigError(HnanasError):
    """A configuration, search-space or genotype file is invalid."""


# OSErrors that are the machine's state, not a bug: the CLI reports them like bad input (one line, exit 2).
_ENVIRONMENT_FIXES = {
    errno.ENOSPC: "free space on that disk or write elsewhere (--out); a run continues from its last checkpoint "
                  "with --resume",
    errno.EDQUOT: "free space in your quota or write elsewhere (--out); a run continues from its last checkpoint "
                  "with --resume",
    errno.EFBIG: "the file size limit (ulimit -f) is too small for it; raise the limit or write elsewhere (--out)",
    errno.EROFS: "the file system is read-only; choose a writable output folder (--out)",
    errno.EACCES: "no permission; choose an output folder you can write (--out) or fix its permissions",
    errno.EPERM: "not permitted; choose an output folder you can write (--out) or fix its permissions",
}


def environment_error(exc: OSError) -> HnanasError | None:
    """The one-line user error for a full disk, a read-only or forbidden folder (naming the file and the fix),
    or None for any other OSError (a bug or an unexpected state, which should keep its traceback)."""
    fix = _ENVIRONMENT_FIXES.get(exc.errno or -1)
    if fix is None:
        return None
    where = f"{exc.filename}: " if exc.filename else ""
    return HnanasError(f"{where}{exc.strerror or exc}; {fix}")
