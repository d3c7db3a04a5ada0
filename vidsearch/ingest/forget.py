"""Taking content out of the index: `vidsearch forget` (files the user names, those gone from
disk, content set aside), and the content a replaced file no longer holds
(:func:`vidsearch.ingest.pipeline.finish`).

A video (content) leaves the index when no file the catalog knows holds it any more: its rows
go from the catalog, its chunks from the shards of every model and channel, and the query-side
copies of the models it had are brought up to date. `forget` deletes the chunks (markers first,
so a reader never sees a done chunk without its shard). Content whose file now holds other
content (a re-export, or another drive mounted at the same place) is only *set aside*
(``detached/``): out of every search, and back without re-embedding if an ingest finds that
content again (:meth:`IndexStore.restore_video`). The video files themselves, case folders and
exported evidence are never touched.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

from vidsearch.errors import UserError, disk_faults, one_line, storage_error
from vidsearch.index.catalog import Catalog
from vidsearch.index.lock import writer_lock
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.channels import channel_for, sync_catalog
from vidsearch.ingest.embed import IMAGE

log = logging.getLogger(__name__)


def drop_videos(store: IndexStore, cat: Catalog, videos: dict[str, str], set_aside: bool = False) -> tuple[list[dict], set[str]]:
    """Take each video (``video_id -> path``) out of the catalog, and delete its chunks (or, with
    ``set_aside``, move them aside). Returns ``({"path", "video_id", "chunks"} each, the model and
    channel ids that had chunks of them)``."""
    dropped: list[dict] = []
    models: set[str] = set()
    for video_id, path in videos.items():
        chunks = store.detach_video(video_id) if set_aside else store.remove_video(video_id)
        cat.forget_video(video_id)
        models.update(chunks)
        dropped.append({"path": path, "video_id": video_id, "chunks": sum(chunks.values())})
    return dropped, models


def refresh_channels(store: IndexStore, model_ids: Iterable[str]) -> None:
    """Bring the query-side copies of these models and channels up to date (the search matrix, the
    text cache, the tag ranges), image models first: the tag ranges are calibrated against the
    image matrix. A failure other than a disk fault is left to the next query."""
    ordered = sorted(dict.fromkeys(model_ids), key=lambda m: channel_for(m) is not IMAGE)  # stable: the caller's order otherwise
    try:
        for model_id in ordered:
            channel_for(model_id).refresh(store, model_id)
    except Exception as e:  # noqa: BLE001 - the query rebuilds them; the removal itself is done
        fault = storage_error(e, store.root / "matrix")
        if fault is not None:
            raise fault from None
        log.warning("query-side copies not updated (%s); the next query will update them", one_line(e))


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def forget(store: IndexStore, paths: Sequence[str | os.PathLike] = (), missing: bool = False,
           dry_run: bool = False, detached: bool = False, force: bool = False) -> dict:
    """Take files out of the index: those under ``paths`` (files or directories), or with
    ``missing`` those no longer on disk (under ``paths`` when given; a file whose directory is not
    there either, as on an unmounted drive, is kept and listed as unreachable). A video that another file
    still holds stays. ``detached``: also delete the content set aside. ``dry_run``: say what
    would go, change nothing. Raises :class:`UserError` when a path names no indexed file, or
    (unless ``force``) when chunks of what would go are still queued: a worker would write them
    back after the forgetting."""
    if not paths and not missing and not detached:
        raise UserError("name the files or directories to forget, or pass --missing or --detached")
    if not store.exists():
        raise UserError(f"no index at {store.root}: nothing to forget")
    roots = [str(Path(p).expanduser().absolute()) for p in paths]
    with writer_lock(store.root, "vidsearch forget"), disk_faults(store.catalog_path):
        with Catalog(store) as cat:
            files = cat.file_videos()
            unmatched = [r for r in roots if not any(_under(p, [r]) for p in files)]
            if unmatched:
                raise UserError(f"{unmatched[0]}: no indexed file there (see `vidsearch status --videos`)")
            named = {p: v for p, v in files.items() if (roots or missing) and (not roots or _under(p, roots))}
            # --missing: a file gone from a directory that is there; a directory that is not there
            # (an unmounted drive, a share offline) proves nothing: those files are kept, and said
            unreachable = {p for p in named if missing and not os.path.isdir(os.path.dirname(p))}
            chosen = {p: v for p, v in named.items() if not missing or (p not in unreachable and not os.path.exists(p))}
            kept = {v for p, v in files.items() if p not in chosen and v}
            gone: dict[str, str] = {}
            for p, v in chosen.items():
                if v and v not in kept:
                    gone.setdefault(v, p)
            queued = cat.pending_chunks(gone) if gone and not force else 0
            if queued:
                raise UserError(f"{queued} chunks of these files are still queued (workers, or an ingest that stopped): "
                                "forget them once `vidsearch status` shows none pending, or pass --force")
            if dry_run:
                videos = [{"path": p, "video_id": v, "chunks": sum(store.video_chunks(v).values())} for v, p in gone.items()]
                models: set[str] = set()
            else:
                cat.forget_files(chosen)
                videos, models = drop_videos(store, cat, gone)
                sync_catalog(cat, [])  # the views, over the shards that are left
        aside = store.detached_videos() if detached else {}
        if aside and not dry_run:
            store.purge_detached()
    if models:
        refresh_channels(store, models)
    return {"files": sorted(chosen), "videos": videos, "chunks": sum(v["chunks"] for v in videos),
            "detached": [{"video_id": v, "chunks": n} for v, n in sorted(aside.items())],
            "unreachable": sorted(unreachable), "dry_run": dry_run}
