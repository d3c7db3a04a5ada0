"""Worker logs across broker restarts: one line per connection error, no traceback.

A Redis restart is routine for a worker (it reconnects, the result is stored on a retry), but
Celery logs some of these errors with a full traceback (the result backend's retries) and
warns at length about a default vidsearch sets on purpose; operators read either as a failure.
"""
from __future__ import annotations

import logging
from typing import Any

CONNECTION_ERRORS = ("ConnectionError", "TimeoutError", "OperationalError", "BusyLoadingError", "ConnectionRefusedError")


def _connection_error(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:  # the error itself or what caused it
        if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in CONNECTION_ERRORS:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


#: vidsearch sets it to False on purpose (docs/distributed.md); Celery warns at every reconnection
CANCEL_SETTING = "worker_cancel_long_running_tasks_on_connection_loss"


class OneLineConnectionErrors(logging.Filter):
    """Turns a record carrying a broker connection error into one line: message (error); drops
    Celery's warning about the future default of a setting vidsearch sets explicitly."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "py.warnings" and CANCEL_SETTING in record.getMessage():
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if _connection_error(exc):
            text = str(exc).strip().splitlines()
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {text[0] if text else ''})"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def _add_filter(logger: logging.Logger | None = None, **_: Any) -> None:
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, OneLineConnectionErrors) for f in handler.filters):
            handler.addFilter(OneLineConnectionErrors())


def install() -> None:
    """Filter the worker's log handlers once Celery has set them up (workers/app.py calls this)."""
    from celery import signals

    signals.after_setup_logger.connect(_add_filter, weak=False)
    signals.after_setup_task_logger.connect(_add_filter, weak=False)
