"""`vidsearch sql`: the DuckDB catalog, read-only, with the model's encoders as SQL functions.

Registered functions (scalar, evaluated once per distinct argument):

* ``text_embedding(VARCHAR) -> FLOAT[dim]``: the unit text embedding of a prompt;
* ``image_embedding(VARCHAR) -> FLOAT[dim]``: the unit embedding of an image file (query by example).

They use the model that the catalog's ``frames`` view reads (or the one given), so that::

    SELECT path, pts, array_cosine_similarity(embedding, text_embedding('red car')) AS score
    FROM frames ORDER BY score DESC LIMIT 10

works. The catalog is opened read-only, so nothing a query does can change the index; the stock
``duckdb`` CLI opens the same file (without these two functions).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from vidsearch.errors import first_line, IndexError_, ModelError, UserError, VidsearchError
from vidsearch.models.contract import ModelInfo
from vidsearch.query.engine import installed_model
from vidsearch.index.store import IndexStore


def _types():
    try:
        from duckdb import sqltypes as t  # duckdb >= 1.4
    except ImportError:  # pragma: no cover - older duckdb
        from duckdb import typing as t
    return t


def frames_model_id(con) -> str | None:
    """The model id of the rows the ``frames`` view reads (None when the index has no frames)."""
    try:
        rows = con.execute("SELECT model_id FROM frames LIMIT 1").fetchall()
        row = rows[0] if rows else None
    except Exception:  # noqa: BLE001 - duckdb raises several error types for a missing view / files
        row = None
    if row:
        return row[0]
    rows = con.execute("SELECT model_id FROM models ORDER BY last_used DESC LIMIT 1").fetchall()
    row = rows[0] if rows else None
    return row[0] if row else None


def find_model(model_id: str, requested: str | None = None) -> ModelInfo:
    """The installed model that built the frames (or the one asked for, which must be that model)."""
    try:
        return installed_model(model_id, requested)
    except ModelError as e:
        if requested:
            raise
        raise ModelError(
            f"the model that built this index ({model_id}) is not installed, so text_embedding() cannot run; "
            "install it (vidsearch model import DIR) or pass --model DIR"
        ) from e


@dataclasses.dataclass
class SqlResult:
    columns: list[str]
    rows: list[tuple]
    model_id: str | None

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]


class SqlSession:
    """A read-only connection to an index's catalog with the embedding functions registered."""

    def __init__(self, store: IndexStore, model: str | None = None, providers: str | None = None):
        import duckdb

        if not store.catalog_path.exists():
            raise IndexError_(f"no index at {store.root}: run `vidsearch ingest DIR` first (or pass --index)")
        try:
            self.con = duckdb.connect(str(store.catalog_path), read_only=True)
        except duckdb.Error as e:
            raise IndexError_(
                f"cannot open {store.catalog_path}: {first_line(e)} (is an ingest running? try again when it ends)"
            ) from None
        self._requested = model
        self._providers = providers
        self._encoder = None
        self._udf_error: VidsearchError | None = None
        try:
            self.model_id = frames_model_id(self.con)
            if model and self.model_id is not None:
                find_model(self.model_id, model)  # a wrong --model is said now, not at the first text_embedding()
            if self.model_id is not None:
                self._register(self._dim())
        except BaseException:
            self.con.close()  # the caller gets no session to close
            raise

    def _dim(self) -> int:
        row = self.con.execute("SELECT dim FROM models WHERE model_id = ?", [self.model_id]).fetchall()[0]
        return int(row[0])

    def encoder(self):
        if self._encoder is None:
            from vidsearch.models.encoder import Encoder

            self._encoder = Encoder(find_model(self.model_id, self._requested), providers=self._providers)
        return self._encoder

    def _register(self, dim: int) -> None:
        t = _types()
        vec = self.con.array_type(t.FLOAT, dim)

        @functools.lru_cache(maxsize=256)
        def text_vec(text: str) -> tuple:
            return tuple(float(x) for x in self.encoder().encode_texts([text])[0])

        @functools.lru_cache(maxsize=64)
        def image_vec(path: str) -> tuple:
            from vidsearch.query.vectors import image_vectors

            return tuple(float(x) for x in image_vectors(self.encoder(), [path])[0])

        def guarded(fn):
            def call(arg):
                if arg is None:
                    return None
                try:
                    return list(fn(arg))
                except VidsearchError as e:  # re-raised as itself by execute(), not as a DuckDB error
                    self._udf_error = e
                    raise

            return call

        text_embedding, image_embedding = guarded(text_vec), guarded(image_vec)

        self.con.create_function("text_embedding", text_embedding, [t.VARCHAR], vec, null_handling="special")
        self.con.create_function("image_embedding", image_embedding, [t.VARCHAR], vec, null_handling="special")

    def execute(self, sql: str, limit: int | None = None) -> SqlResult:
        import duckdb

        if not sql.strip():
            raise UserError('empty SQL: e.g. vidsearch sql "SELECT path, duration FROM videos"')
        try:
            cur = self.con.execute(sql)
            columns = [d[0] for d in cur.description] if cur.description else []
            rows = cur.fetchmany(limit) if limit else cur.fetchall()
        except duckdb.Error as e:
            if self._udf_error is not None:
                raise self._udf_error from None
            msg = " ".join(str(e).split())
            if "read-only" in msg.lower():
                msg += " (vidsearch sql opens the catalog read-only)"
            raise UserError(msg[:500]) from None
        return SqlResult(columns, [tuple(_plain(v) for v in r) for r in rows], self.model_id)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "SqlSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def run_sql(store: IndexStore, sql: str, model: str | None = None, providers: str | None = None, limit: int | None = None) -> SqlResult:
    with SqlSession(store, model=model, providers=providers) as s:
        return s.execute(sql, limit=limit)
