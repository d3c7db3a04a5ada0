"""Run a frame generator in a thread, so that decoding overlaps inference (bounded queue)."""
from __future__ import annotations

import queue
import threading
from typing import Iterator

_DONE = object()


def _put(q: queue.Queue, stop: threading.Event, item) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _worker(gen: Iterator, q: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in gen:
            if not _put(q, stop, item):
                return
        _put(q, stop, _DONE)
    except BaseException as e:  # noqa: BLE001 - handed to the consumer
        _put(q, stop, e)
    finally:
        if hasattr(gen, "close"):
            gen.close()  # in this thread, where it ran: closes the container


class Prefetch:
    """Run ``gen`` in a thread from now on, so decoding overlaps inference; re-raises its exceptions
    in the consumer. At most ``maxsize`` items wait (memory stays flat). ``close()`` (or dropping
    the object) stops the thread."""

    def __init__(self, gen: Iterator, maxsize: int):
        self.q: queue.Queue = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()
        self.finished = False
        # the thread holds the queue and the event, not this object: dropping it stops the thread
        threading.Thread(target=_worker, args=(gen, self.q, self.stop), daemon=True, name="vidsearch-decode").start()

    def __iter__(self) -> "Prefetch":
        return self

    def __next__(self):
        if self.finished:
            raise StopIteration
        item = self.q.get()
        if item is _DONE:
            self.finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        self.finished = True

    __del__ = close


def prefetch(gen: Iterator, maxsize: int) -> Prefetch:
    return Prefetch(gen, maxsize)
