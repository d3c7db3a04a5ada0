"""Find the installed model that produced some embeddings, by its content id (``name@sha``).

Indexes, query results and Celery tasks record a model id, not a directory: the query side,
``vidsearch sql`` and the workers all map it back to a local model directory here.
"""
from __future__ import annotations

from vidsearch.errors import ModelError, UserError
from vidsearch.models.contract import ModelInfo, installed_models, load_model_info
from vidsearch.settings import models_dir


def installed_model(model_id: str, requested: str | None = None, *, strict: bool = True,
                    hint: str | None = None) -> ModelInfo:
    """The model whose id is ``model_id``: ``requested`` (a name or directory) or an installed one.

    With ``strict`` a ``requested`` model that is another model is a :class:`UserError`; without
    it (a worker's ``VIDSEARCH_MODEL``) it is only preferred. ``hint`` ends the not-found message.
    """
    if requested:
        info = load_model_info(requested)
        if info.model_id == model_id:
            return info
        if strict:
            raise UserError(f"model {info.model_id} is not the model these results came from ({model_id}); pass that model")
    installed = installed_models()
    for info in installed:
        if info.model_id == model_id:
            return info
    have = ", ".join(m.model_id for m in installed) or "none"
    raise ModelError(
        f"model {model_id} is not installed in {models_dir()} (installed: {have}); "
        f"{hint or 'install it (vidsearch model import DIR) or pass --model DIR'}"
    )
