"""The Arrow schema of the on-screen text shards (shared by the OCR channel and its query-side cache)."""
from __future__ import annotations

from vidsearch.index.shards import shard_schema

TEXT_DIM = 384  # the sentence embedder's width


def text_schema(dim: int = TEXT_DIM):
    """One row per recognised line: the key columns, the text, its OCR confidence, its box (fractions
    of the frame) and the sentence vector of the text."""
    import pyarrow as pa

    schema = shard_schema(
        pa.field("text", pa.string(), nullable=False),
        pa.field("confidence", pa.float32(), nullable=False),
        pa.field("x0", pa.float32(), nullable=False),
        pa.field("y0", pa.float32(), nullable=False),
        pa.field("x1", pa.float32(), nullable=False),
        pa.field("y1", pa.float32(), nullable=False),
        pa.field("text_embedding", pa.list_(pa.float32(), dim), nullable=False),
    )
    return schema.with_metadata({**schema.metadata, b"vidsearch.channel": b"ocr"})
