"""Where vidsearch keeps its state: the home directory, models, the default index, config.

``VIDSEARCH_HOME`` (default ``$XDG_DATA_HOME/vidsearch`` or ``~/.local/share/vidsearch``) holds
``models/`` (one directory per installed model), ``index/`` (the default index) and
``config.json``. ``VIDSEARCH_INDEX`` or ``--index`` points at another index directory.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def home() -> Path:
    env = os.environ.get("VIDSEARCH_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "vidsearch"


def models_dir() -> Path:
    return home() / "models"


def default_index_dir() -> Path:
    env = os.environ.get("VIDSEARCH_INDEX")
    return Path(env).expanduser() if env else home() / "index"


def config_path() -> Path:
    return home() / "config.json"


def read_config() -> dict[str, Any]:
    p = config_path()
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def configured_broker_url(explicit: str | None = None) -> str | None:
    """The Celery broker URL: ``explicit``, else ``$VIDSEARCH_BROKER_URL``, else ``broker_url`` in
    config.json, else None."""
    return explicit or os.environ.get("VIDSEARCH_BROKER_URL") or read_config().get("broker_url") or None


def write_config(**updates: Any) -> dict[str, Any]:
    cfg = read_config()
    cfg.update(updates)
    p = config_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")
    os.replace(tmp, p)
    return cfg
