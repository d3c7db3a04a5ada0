"""Which model a query uses: the one asked for, the configured default, or the only one indexed."""
from __future__ import annotations

from vidsearch.errors import IndexUnusableError, ModelError, UserError
from vidsearch.index.meta import read_meta
from vidsearch.index.shards import IndexStore
from vidsearch.models.contract import ModelInfo, installed_models, load_model_info
from vidsearch.settings import read_config


def indexed_models(store: IndexStore) -> list[tuple[str, str]]:
    """(model_id, name) of the models that have frames in this index."""
    meta = read_meta(store)  # the catalog's JSON copy beside the matrices: no DuckDB on the query path
    return [] if meta is None else [tuple(m) for m in meta.models]


def pick_model(store: IndexStore, requested: str | None) -> ModelInfo:
    """The model to query with: the one asked for, else the default, else the only one indexed."""
    have = indexed_models(store)
    if not have:
        raise IndexUnusableError(f"the index at {store.root} has no frames yet: run `vidsearch ingest DIR` first")
    ids = {m for m, _ in have}
    names = ", ".join(f"{n} ({m})" for m, n in have)
    if requested:
        info = load_model_info(requested)
        if info.model_id not in ids:
            raise UserError(
                f"model {info.model_id} has not indexed anything here; this index was built with {names}: "
                f"query with --model {have[0][1]} (or ingest again with --model {requested})"
            )
        return info
    default = _default_model(ids)
    if default is not None:
        return default
    candidates = [info for info in installed_models() if info.model_id in ids]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelError(f"none of the models that built this index is installed ({names}); install it or pass --model DIR")
    raise UserError(f"this index holds several models ({names}); choose one with --model")


def _default_model(ids: set[str]) -> ModelInfo | None:
    """The configured ``default_model`` when it is installed and indexed here."""
    default = read_config().get("default_model")
    if not default:
        return None
    try:
        info = load_model_info(default)
    except ModelError:
        return None
    return info if info.model_id in ids else None
