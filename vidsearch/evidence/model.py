"""What an evidence manifest says about the model: its files as they are at export time.

The ``files`` of the manifest are hashed in full when the export runs (never copied from
``model.json`` or the catalog), and ``files_match_model_id`` recomputes the model id from those
hashes. A model that is not installed here has no files to hash: ``files`` is empty,
``files_match_model_id`` null, and what the catalog recorded is kept as ``recorded_files``.
"""
from __future__ import annotations

import dataclasses
import json

from vidsearch.errors import ModelError, UserError
from vidsearch.index.catalog import Catalog
from vidsearch.models.contract import ModelInfo, model_id_for, sha256_file
from vidsearch.models.installed import installed_model
from vidsearch.models.verify import verify_model_files


@dataclasses.dataclass
class ExportContext:
    """The model record for the manifest, the installed model (None: not here, or its files do not
    match), the catalog's ``duration`` / ``creation_time`` per video_id, and warnings."""

    model: dict
    info: ModelInfo | None
    videos: dict[str, dict]
    warnings: list[str]


def catalog_context(store, model_id: str) -> tuple[dict, dict[str, dict]]:
    """What the index's catalog knows for an export: the model's row (``name`` + its info) and
    ``duration`` / ``creation_time`` per video_id. Empty when the index has no catalog."""
    model_meta: dict = {}
    videos: dict[str, dict] = {}
    if not store.catalog_path.exists():
        return model_meta, videos
    with Catalog(store, read_only=True) as cat:
        row = cat.model_row(model_id)
        if row:
            model_meta = {"name": row[0], **json.loads(row[1] or "{}")}
        for vid, _path, dur, ct in cat.video_meta():
            videos[vid] = {"duration": dur, "creation_time": ct}
    return model_meta, videos


def export_context(store, model_id: str, requested: str | None = None, allow_mismatch: bool = False) -> ExportContext:
    """The model and videos an export of results from ``model_id`` rests on.

    The model must be known: in the index's catalog, installed here, or the on-screen text
    channel. An installed model's files are hashed in full now; files that do not give
    ``model_id`` stop the export (one line naming the file and both hashes) unless
    ``allow_mismatch``, which records them with ``files_match_model_id: false``.
    """
    from vidsearch.ocr.channel import OCR_CHANNEL

    meta, videos = catalog_context(store, model_id)
    try:
        info = installed_model(model_id, requested)
    except ModelError:
        if requested:
            raise
        info = None
    if info is None and not meta and model_id != OCR_CHANNEL:
        raise UserError(f"model {model_id} is neither in the index at {store.root} nor installed: "
                        "export from the index the results came from (--index DIR), or install the model")
    if info is None:
        return _not_here(model_id, meta, videos)
    record, ok, warnings = hashed_model(info, model_id, allow_mismatch)
    return ExportContext(record, info if ok else None, videos, warnings)


def _not_here(model_id: str, meta: dict, videos: dict[str, dict]) -> ExportContext:
    record = {"name": meta.get("name"), "semantics": meta.get("semantics"), "files": {},
              "files_match_model_id": None, "recorded_files": dict(meta.get("files") or {})}
    warn = [] if not meta else [f"model {model_id} is not installed here: its files were not hashed at export time"]
    return ExportContext(record, None, videos, warn)


def hashed_model(info: ModelInfo, model_id: str, allow_mismatch: bool) -> tuple[dict, bool, list[str]]:
    """(the manifest's model record, whether the files match, warnings): every file of ``info``
    hashed in full now, the model id recomputed from those hashes."""
    try:
        files = verify_model_files(info, full=True)
    except ModelError as e:
        if not allow_mismatch:
            raise ModelError(f"{e}; or pass --allow-mismatch to export with the model marked as not matching") from None
        files = {f: sha256_file(info.path / f) for f in info.files}
    match = model_id_for(info.name, files) == model_id
    warnings = [] if match else [f"MODEL FILES DO NOT MATCH {model_id}: hashed now they give {model_id_for(info.name, files)}"]
    record = {"name": info.name, "semantics": info.semantics, "files": files, "files_match_model_id": match}
    return record, match, warnings
