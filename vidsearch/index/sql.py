"""`vidsearch sql`: the DuckDB catalog in a sandbox, with the model's encoders as SQL functions.

Registered functions (scalar, evaluated once per distinct argument):

* ``text_embedding(VARCHAR) -> FLOAT[dim]``: the unit text embedding of a prompt;
* ``image_embedding(VARCHAR) -> FLOAT[dim]``: the unit embedding of an image file (query by example).

They use the model that the catalog's ``frames`` view reads (or the one given), so that::

    SELECT path, pts, array_cosine_similarity(embedding, text_embedding('red car')) AS score
    FROM frames ORDER BY score DESC LIMIT 10

works. Nothing a query does can change the index or reach outside it: the catalog is attached
read-only to a private in-memory database whose file access DuckDB limits to the index directory
(no network, no extensions, configuration locked), and only SELECT-like statements run. Results
leave through vidsearch's own outputs (:meth:`SqlSession.write_parquet`, the CLI's --csv/--json).
The stock ``duckdb`` CLI opens the same file (without the two functions).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vidsearch.errors import first_line, IndexUnusableError, ModelError, UserError, VidsearchError
from vidsearch.models.contract import ModelInfo
from vidsearch.models.installed import installed_model
from vidsearch.index.catalog import frames_model_id, model_dim, sandboxed_connection
from vidsearch.index.shards import IndexStore


#: Said with every refused statement.
ALLOWED = ("vidsearch sql runs read-only SELECT queries over the index; "
           "to save results use --csv, --json or --parquet FILE")
_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
_EXPLAIN = re.compile(r"EXPLAIN\b(?:\s+ANALY[SZ]E\b)?\s*(?:\([^)]*\))?", re.I)


def _types():
    try:
        from duckdb import sqltypes as t  # duckdb >= 1.4
    except ImportError:  # pragma: no cover - older duckdb
        from duckdb import typing as t
    return t


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
        self.store = store
        self.con, self._tmp = sandboxed_connection(store)
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
            self.close()  # the caller gets no session to close
            raise

    def _dim(self) -> int:
        return model_dim(self.con, self.model_id)

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
            from vidsearch.models.images import image_vectors

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
        """Run ``sql`` (SELECT-like statements only); the last statement's rows (at most ``limit``)."""
        statements = checked_statements(self.con, sql)
        with self._said_plainly():
            for st in statements:
                cur = self.con.execute(st)
            columns = [d[0] for d in cur.description] if cur.description else []
            rows = cur.fetchmany(limit) if limit else cur.fetchall()
        return SqlResult(columns, [tuple(_plain(v) for v in r) for r in rows], self.model_id)

    def write_parquet(self, sql: str, out: str | os.PathLike, limit: int | None = None) -> int:
        """Write the last statement's rows (at most ``limit``) to the Parquet file ``out``, outside the
        index, atomically (temp file + rename); the number of rows written."""
        import pyarrow as pa

        out = Path(out).expanduser().absolute()
        root = self.store.root.resolve()
        if out.resolve() == root or root in out.resolve().parents:
            raise UserError(f"--parquet {out}: that is inside the index ({root}); write the results elsewhere")
        statements = checked_statements(self.con, sql)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
        try:
            with self._said_plainly():
                for st in statements[:-1]:  # their rows are not wanted (SELECTs change nothing)
                    self.con.execute(st)
                    getattr(self.con, "abort", lambda: None)()  # duckdb >= 2: let con.sql() run next
                n = _stream_parquet(self.con.sql(statements[-1]), tmp, limit)
            os.replace(tmp, out)
        except pa.ArrowException as e:
            if isinstance(e, OSError):
                raise
            raise UserError(f"--parquet {out}: {first_line(e)}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return n

    @contextlib.contextmanager
    def _said_plainly(self) -> Iterator[None]:
        """DuckDB's errors as one-line ``UserError``s (an embedding function's own error as itself)."""
        import duckdb

        try:
            yield
        except duckdb.Error as e:
            if self._udf_error is not None:
                raise self._udf_error from None
            if _damaged_shard(e, self.store):
                raise IndexUnusableError(_damaged_message(e, self.store)) from None
            raise UserError(_duckdb_message(e, self.store.root)) from None

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

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


def checked_statements(con, sql: str) -> list:
    """The statements of ``sql``, refused (one line saying what is allowed) unless each is a SELECT
    (WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE...) or an EXPLAIN of one."""
    import duckdb

    if not _COMMENTS.sub("", sql, count=1).strip():
        raise UserError('empty SQL: e.g. vidsearch sql "SELECT path, duration FROM videos"')
    try:
        statements = con.extract_statements(sql)
    except duckdb.ParserException as e:
        raise UserError(" ".join(str(e).split())[:500]) from None
    except (duckdb.Error, ValueError):  # e.g. a statement type this duckdb's Python module has no name for
        raise UserError(f"{_first_word(sql)} is not allowed: {ALLOWED}") from None
    if not statements:
        raise UserError('empty SQL: e.g. vidsearch sql "SELECT path, duration FROM videos"')
    for st in statements:
        if not _select_like(con, st):
            raise UserError(f"{_first_word(st.query)} is not allowed: {ALLOWED}")
    return statements


def _kind(statement) -> str:
    try:
        kind = statement.type
    except ValueError:  # a statement type this duckdb's Python module has no name for
        return ""
    return getattr(kind, "name", str(kind)).rsplit(".", 1)[-1]


def _select_like(con, statement) -> bool:
    """A SELECT, or an EXPLAIN [ANALYZE] [(options)] of exactly one SELECT (EXPLAIN ANALYZE runs it)."""
    kind = _kind(statement)
    if kind == "SELECT":
        return True
    if kind != "EXPLAIN":
        return False
    text = _COMMENTS.sub("", statement.query, count=1)
    m = _EXPLAIN.match(text)
    try:
        inner = con.extract_statements(text[m.end():]) if m else []
    except Exception:  # noqa: BLE001 - anything we cannot read back is refused
        return False
    return len(inner) == 1 and _kind(inner[0]) == "SELECT"


def _first_word(sql: str) -> str:
    words = _COMMENTS.sub("", sql, count=1).split(None, 1)
    return re.sub(r"\W.*", "", words[0]).upper() if words else "this statement"


def _duckdb_message(e: Exception, root: Path) -> str:
    """One line for a DuckDB error: a refused file or address says what vidsearch sql may read."""
    import duckdb

    msg = " ".join(str(e).split())
    if isinstance(e, duckdb.PermissionException):
        m = re.search(r'Cannot access (?:file|directory) "([^"]*)"', msg)
        what = f'cannot access "{m.group(1)[:200]}"' if m else msg[:300]
        return (f"{what}: vidsearch sql reads only files inside the index ({root}), never the network; "
                "to save results use --csv, --json or --parquet FILE")
    if "read-only" in msg.lower():
        msg = msg[:400] + " (vidsearch sql opens the catalog read-only)"
    return msg[:500]


#: DuckDB's words for a Parquet file whose bytes it cannot make sense of
_DAMAGED_PARQUET = re.compile(r"TProtocolException|magic bytes|corrupt", re.I)


def _damaged_shard(e: Exception, store: IndexStore) -> bool:
    """Did reading a shard fail (a damaged file under a view), rather than the query itself?
    (Errors about the query's text, which they quote, or about a refused file are not that.)"""
    import duckdb

    if isinstance(e, (duckdb.PermissionException, duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)):
        return False
    msg = str(e)
    return bool(_DAMAGED_PARQUET.search(msg)) or (str(store.shards_root) in msg and ".parquet" in msg)


def _damaged_message(e: Exception, store: IndexStore) -> str:
    """One line for a shard the views cannot read: which shards a quick check (size, footer) finds
    damaged, and what to do (``status --verify`` sets them aside; the next ingest redoes them)."""
    said = " ".join(str(e).split())[:200]
    bad = [(store.done_shard(rec), problem) for rec, problem in store.verify(full=False) if problem]
    where = (f"{bad[0][0]}: {bad[0][1]}" + (f"; {len(bad) - 1} more" if len(bad) > 1 else "")) if bad else f"DuckDB: {said}"
    return (f"a shard of the index cannot be read ({where}): run `vidsearch status --verify` to set damaged "
            "shards aside (queries then leave them out), then `vidsearch ingest` the same files to redo them")


def _stream_parquet(rel, path: Path, limit: int | None) -> int:
    """Write a relation's rows to ``path`` batch by batch; the number of rows written."""
    import pyarrow.parquet as pq

    reader = rel.to_arrow_reader(8192) if hasattr(rel, "to_arrow_reader") else rel.fetch_record_batch(8192)
    n = 0
    with pq.ParquetWriter(str(path), reader.schema) as w:
        for batch in reader:
            if limit and n + batch.num_rows > limit:
                batch = batch.slice(0, limit - n)
            w.write_batch(batch)
            n += batch.num_rows
            if limit and n >= limit:
                break
    return n


def write_parquet(store: IndexStore, sql: str, out: str | os.PathLike, model: str | None = None,
                  providers: str | None = None, limit: int | None = None) -> int:
    with SqlSession(store, model=model, providers=providers) as s:
        return s.write_parquet(sql, out, limit=limit)


def run_sql(store: IndexStore, sql: str, model: str | None = None, providers: str | None = None, limit: int | None = None) -> SqlResult:
    with SqlSession(store, model=model, providers=providers) as s:
        return s.execute(sql, limit=limit)
