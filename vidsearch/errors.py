"""Exceptions with one-line, user-facing messages.

``UserError`` subclasses describe bad input that retrying will not fix (a corrupt video, a
missing model). ``TransientError`` describes failures worth retrying (I/O, a broker away).
The CLI turns any ``VidsearchError`` into a one-line ``ClickException``.
"""


class VidsearchError(Exception):
    """Base class: ``str(e)`` is a complete one-line message."""


class UserError(VidsearchError):
    """Bad input; not retried."""


class ModelError(UserError):
    """A missing or invalid model directory."""


class VideoError(UserError):
    """A file that cannot be read as a video (corrupt, truncated, no video stream...)."""


class IndexError_(UserError):
    """The index is missing, or asked for something it does not hold."""


class TransientError(VidsearchError):
    """Worth retrying: I/O hiccups, an unreachable broker."""


def first_line(e: BaseException) -> str:
    """The first line of ``e``'s message, or its type name when it has none."""
    msg = str(e).strip().splitlines()
    return msg[0] if msg else type(e).__name__


def one_line(e: BaseException) -> str:
    """A single line describing ``e`` (for logs and failure records)."""
    text = first_line(e)
    if not isinstance(e, VidsearchError):
        text = f"{type(e).__name__}: {text}"
    return text
