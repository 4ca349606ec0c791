"""Errors meant for people: the CLI prints them as one line and exits non-zero."""


class Loc3rError(Exception):
    """A failure with a message a user can act on."""

    exit_code = 1


class UsageError(Loc3rError):
    """Invalid arguments or settings."""

    exit_code = 2


class DataError(Loc3rError):
    """Missing, corrupt or inconsistent data on disk."""
