"""The catalog facts beside the matrices (vidsearch/index/meta.py): a query opens no DuckDB."""
from __future__ import annotations

import os

import pytest

from vidsearch.index import meta as M
from vidsearch.index.catalog import Catalog
from vidsearch.index.shards import IndexStore


def add_video(store, vid, path):
    with Catalog(store) as cat:
        cat.upsert_video(vid, {"path": path, "duration": 60.0, "width": 8, "height": 8, "fps": 1.0, "codec": "h264",
                               "creation_time": "2024-05-01T10:00:00Z"}, 1)


def age(store, seconds=10):
    """Make the catalog files look older than the racy window."""
    for p in (store.catalog_path, store.catalog_path.with_name(store.catalog_path.name + ".wal")):
        if p.exists():
            st = p.stat()
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_read_meta_uses_the_json_until_the_catalog_changes(home, monkeypatch):
    store = IndexStore(home / "index")
    assert M.read_meta(store) is None  # no catalog yet
    add_video(store, "a" * 64, "/v/a.mp4")
    age(store)
    m = M.read_meta(store)
    assert m.videos["a" * 64] == ("/v/a.mp4", 60.0, "2024-05-01T10:00:00Z") and m.models == []
    assert M.meta_path(store).is_file()

    def no_duckdb(*a, **k):
        raise AssertionError("the catalog was opened")

    monkeypatch.setattr(Catalog, "__init__", no_duckdb)
    assert M.read_meta(store).videos == m.videos  # from the JSON
    monkeypatch.undo()
    add_video(store, "b" * 64, "/v/b.mp4")  # the catalog changed: read again
    assert set(M.read_meta(store).videos) == {"a" * 64, "b" * 64}


def test_a_just_written_catalog_is_not_trusted(home, monkeypatch):
    store = IndexStore(home / "index")
    add_video(store, "a" * 64, "/v/a.mp4")
    M.read_meta(store)  # within the racy window: written without a stamp
    opened = []
    real = Catalog.__init__
    monkeypatch.setattr(Catalog, "__init__", lambda self, *a, **k: (opened.append(1), real(self, *a, **k))[1])
    M.read_meta(store)
    assert opened  # read again


def test_a_read_only_index_still_answers(home, monkeypatch):
    store = IndexStore(home / "index")
    add_video(store, "a" * 64, "/v/a.mp4")
    age(store)

    def refuse(*a, **k):
        raise PermissionError("read-only")

    monkeypatch.setattr(M, "write_json_atomic", refuse)
    assert set(M.read_meta(store).videos) == {"a" * 64}
