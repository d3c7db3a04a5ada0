"""Exceptions with one-line, user-facing messages.

``UserError`` subclasses describe bad input that retrying will not fix (a corrupt video, a
missing model). ``TransientError`` describes failures worth retrying (I/O, a broker away).
The CLI turns any ``VidsearchError`` into a one-line ``ClickException``.
"""
import contextlib
from typing import Iterator


class VidsearchError(Exception):
    """Base class: ``str(e)`` is a complete one-line message."""


class UserError(VidsearchError):
    """Bad input; not retried."""


class ModelError(UserError):
    """A missing or invalid model directory."""


class VideoError(UserError):
    """A file that cannot be read as a video (corrupt, truncated, no video stream...)."""


class IndexUnusableError(UserError):
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


class StorageError(VidsearchError):
    """The disk refused a write (full, quota, read-only, no permission): the run stops, in one line
    naming the path and what to do; everything written before stays."""


#: errno -> (what happened, what to do)
_STORAGE_ERRNOS = {
    28: ("no space left on the device", "free some space and run the same command again (everything written so far is kept)"),
    122: ("disk quota exceeded", "free some space and run the same command again (everything written so far is kept)"),
    30: ("read-only file system", "use a writable --index directory (queries and status can read a read-only index)"),
    13: ("permission denied", "make it writable for this user, or use another --index directory"),
    1: ("operation not permitted", "make it writable for this user, or use another --index directory"),
    27: ("file too large", "use a file system that allows larger files"),
}
_STORAGE_TEXT = {"no space left on device": 28, "disk quota exceeded": 122, "read-only file system": 30, "permission denied": 13}


def storage_error(e: BaseException, where: object = None) -> StorageError | None:
    """``e`` as a one-line :class:`StorageError` when it is a disk fault (an ``OSError`` with one of
    the errnos above, or a DuckDB error whose text says so); None otherwise. ``where``: the path to
    name when ``e`` does not carry one."""
    import re

    if isinstance(e, StorageError):
        return e
    code = getattr(e, "errno", None) if isinstance(e, OSError) else None
    path = getattr(e, "filename", None) if isinstance(e, OSError) else None
    text = str(e)
    if code not in _STORAGE_ERRNOS:
        low = text.lower()
        code = next((c for t, c in _STORAGE_TEXT.items() if t in low), None)
        if code is None:
            return None
        quoted = re.search(r'"(/[^"]+)"', text)
        path = path or (quoted.group(1) if quoted else None)
    what, todo = _STORAGE_ERRNOS[code]
    return StorageError(f"{path or where or 'the index'}: {what}: {todo}")


@contextlib.contextmanager
def disk_faults(where: object = None) -> Iterator[None]:
    """Turn a disk fault raised in the block into its one-line :class:`StorageError` (see
    :func:`storage_error`); anything else passes unchanged."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a disk fault
        fault = storage_error(e, where)
        if fault is None or fault is e:
            raise
        raise fault from None
