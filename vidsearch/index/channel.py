"""What a channel is: one kind of per-frame data an ingest writes as chunk shards.

The image embedding (:mod:`vidsearch.ingest.embed`) and the on-screen text
(:mod:`vidsearch.ocr.channel`) are channels; :mod:`vidsearch.ingest.channels` lists them. Ingest,
the worker task and the catalog go through this interface only, so a new channel (audio
transcripts, say) needs no change to them. A channel's chunks are ordinary
:class:`~vidsearch.core.plan.ChunkSpec` objects whose ``model_id`` the channel owns; they are
written under ``shards/<model_slug(model_id)>/`` with the usual shard + ``.done`` marker discipline.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence


@dataclasses.dataclass(frozen=True)
class Fill:
    """A view column that only some shards carry: a chunk has it when the catalog's fact ``when``
    holds for the chunk (``"embedded"``: its marker counted the frames through the encoder;
    ``"regions"``: it was sampled with regions). Rows of the other shards get ``default``: the
    name of another column of the view (a str) or a constant (a number, or a tuple for an array)."""

    name: str
    type: Any  # pyarrow type of the column
    when: str
    default: Any


@dataclasses.dataclass(frozen=True)
class ShardView:
    """A catalog view over one model id's shards, declared by its channel (the catalog writes the SQL).

    ``columns``: the view's columns in order, shard columns or names of ``arrays`` (default: the
    schema's). ``arrays``: ``(name, source columns)`` pairs, each a ``FLOAT[n]`` column packed
    from ``n`` float columns. ``optional``: no view at all while there are no shards (otherwise an
    empty view with the same columns). ``model_id`` None: always the empty view, unless ``path``
    names files the channel keeps itself (a glob relative to the index root), read once they exist.
    ``fills``: columns after those, which older (or other) shards lack (:class:`Fill`).
    """

    name: str
    model_id: str | None
    schema: Any  # pyarrow.Schema of the shards
    columns: tuple[str, ...] = ()
    arrays: tuple[tuple[str, tuple[str, ...]], ...] = ()
    optional: bool = False
    path: str | None = None
    fills: tuple[Fill, ...] = ()


@dataclasses.dataclass(frozen=True)
class AliasView:
    """A view that reads the first existing view of ``candidates``, else ``empty``'s columns."""

    name: str
    candidates: tuple[str, ...]
    empty: ShardView


View = ShardView | AliasView


class Channel(Protocol):
    """One kind of per-frame data: how it is planned, processed, viewed, counted and read back."""

    #: what ``IngestOptions.channels`` calls it ("image", "ocr")
    name: str
    #: the key its frames add up under in the ingest report and ``status`` ("frames", "ocr_frames")
    report_key: str
    #: whether :meth:`process` needs the image encoder of the chunk's model (else it gets None)
    needs_encoder: bool
    # optional ``motion_gated = True``: the planner gives the channel's chunk specs the ingest's
    # ``--motion`` setting (the image channel); other channels' specs say "off"

    def owns(self, model_id: str) -> bool:
        """Whether chunks of ``model_id`` are this channel's."""

    def model_id(self, model: Any) -> str:
        """The model id of this channel's chunks in an ingest with image model ``model``."""

    def plan(self, video_id: str, path: str, duration: float, model_id: str, sampling: Any, chunk_s: float) -> list:
        """The chunk specs of one video (``sampling``: the ingest's; a channel may use its own)."""

    def start(self, spec: Any, encoder: Any, batch_size: int) -> Any:
        """Begin work on ``spec`` that may overlap the previous chunk (e.g. decoding); None: nothing."""

    def process(self, spec: Any, store: Any, encoder: Any = None, batch_size: int = 32, started: Any = None) -> dict:
        """Run one chunk: write its shard and ``.done`` marker (or ``.failed``); returns the marker."""

    def shard_schema(self, dim: int | None = None) -> Any:
        """The Arrow schema of this channel's shards."""

    def views(self, models: Sequence[tuple[str, int]]) -> list[View]:
        """The catalog views over this channel's shards; ``models``: the catalog's image models
        ``(model_id, dim)``, most recently used first."""

    def refresh(self, store: Any, model_id: str) -> Any:
        """Bring the query-side copy of ``model_id``'s shards up to date (after an ingest)."""
