"""The channels an ingest can run (image embedding, on-screen text, ...) and which one a chunk is.

Ingest, the backends, the worker task and the catalog reach channels only through this list and
the interface of :mod:`vidsearch.index.channel`; adding a channel is adding it here (or calling
:func:`register`).
"""
from __future__ import annotations

from typing import Iterable

from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import UserError
from vidsearch.index.catalog import Catalog
from vidsearch.index.channel import Channel
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.embed import IMAGE
from vidsearch.ocr.channel import OCR
from vidsearch.retro.tagchannel import TAGS

#: every channel; the image channel last: it owns every model id no other channel owns
CHANNELS: list[Channel] = [OCR, TAGS, IMAGE]


def register(channel: Channel) -> None:
    """Add a channel (before the image channel); one of the same name is replaced."""
    unregister(channel.name)
    CHANNELS.insert(len(CHANNELS) - 1, channel)


def unregister(name: str) -> None:
    if name == IMAGE.name:
        raise ValueError("the image channel cannot be removed")
    CHANNELS[:] = [c for c in CHANNELS if c.name != name]


def channel_for(model_id: str) -> Channel:
    """The channel whose chunks carry ``model_id``."""
    return next(c for c in CHANNELS if c.owns(model_id))


def by_name(name: str) -> Channel:
    for c in CHANNELS:
        if c.name == name:
            return c
    raise UserError(f"no channel {name!r}: the channels are {', '.join(c.name for c in CHANNELS)}")


def active(model, names: Iterable[str] = ()) -> list[tuple[Channel, str]]:
    """``(channel, model id of its chunks)`` of an ingest with image model ``model`` that also runs
    the channels ``names``: the image channel first."""
    out = [(IMAGE, IMAGE.model_id(model))]
    for name in names:
        channel = by_name(name)
        if all(channel is not c for c, _ in out):
            out.append((channel, channel.model_id(model)))
    return out


def report_keys() -> list[str]:
    """The keys frames add up under in the ingest report and ``status`` (``frames`` first)."""
    keys = ["frames"]
    for c in CHANNELS:
        if c.report_key not in keys:
            keys.append(c.report_key)
    return keys


def process_chunk(spec: ChunkSpec, encoder, store: IndexStore, batch_size: int = 32) -> dict:
    """The unit of work of every backend: the chunk's channel writes its shard and marker
    (``encoder``: the image encoder of the chunk's model, for a channel that needs one)."""
    channel = channel_for(spec.model_id)
    return channel.process(spec, store, encoder if channel.needs_encoder else None, batch_size)


def sync_catalog(cat: Catalog, specs: Iterable[ChunkSpec] | None = None) -> dict[str, int]:
    """:meth:`Catalog.sync` with every channel's views."""
    return cat.sync(specs, tuple(CHANNELS))
