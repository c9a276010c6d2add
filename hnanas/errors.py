"""User-facing errors.

Library code raises :class:`HnanasError` for bad input (a missing file, a wrong key, a table for another
space). The CLI prints its message as one line and exits with status 2; nothing else is caught, so real bugs
still show a traceback.
"""

from __future__ import annotations


class HnanasError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""

    exit_code = 2


class DataError(HnanasError):
    """A dataset file is missing, unreadable or inconsistent."""


class ConfigError(HnanasError):
    """A configuration, search-space or genotype file is invalid."""
