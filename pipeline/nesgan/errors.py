"""Errors the user can fix. The CLI prints them as one line and exits 1."""


class NesganError(Exception):
    """A problem with the user's input or environment, with the fix in the message."""
