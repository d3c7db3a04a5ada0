"""Settings: the one place that reads ``VIDSEARCH_*`` variables and ``config.json``.

:meth:`Settings.load` resolves every setting once (environment, then ``config.json`` in
``VIDSEARCH_HOME``, then the default); the CLI builds one per command and passes it down, lower
layers fall back to :func:`current`. The table of variables is in :class:`Settings`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

#: source label of a value that came from nowhere (the built-in default)
DEFAULT = "default"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every ``VIDSEARCH_*`` setting, resolved: environment > ``config.json`` key > default.

    An empty variable counts as unset. Numbers are kept as text and checked where they are used
    (so a bad value fails the command that needs it, with a message naming the variable).

    ========================== ================= =============================================
    variable                   config.json key   meaning (default)
    ========================== ================= =============================================
    VIDSEARCH_HOME             -                 state directory: models/, index/, config.json
                                                 ($XDG_DATA_HOME/vidsearch or ~/.local/share/vidsearch)
    VIDSEARCH_INDEX            -                 index directory, as ``--index`` ($VIDSEARCH_HOME/index)
    VIDSEARCH_MODEL            -                 model name or directory for ``-m/--model`` and workers
                                                 (config ``default_model``)
    VIDSEARCH_PROVIDERS        providers         auto|tensorrt|cuda|cpu (auto)
    VIDSEARCH_BROKER_URL       broker_url        Celery broker URL (none)
    VIDSEARCH_VISIBILITY_TIMEOUT -               seconds a task may stay unacknowledged (3600)
    VIDSEARCH_STALL_S          -                 seconds without progress before the submitter
                                                 audits the broker (30)
    VIDSEARCH_MAX_CRASHES      -                 worker deaths before a chunk is failed (3)
    VIDSEARCH_LEASE_S          -                 seconds an unrenewed chunk lease lives before any
                                                 worker requeues its chunk (20)
    VIDSEARCH_LEASE_RENEW_S    -                 seconds between lease renewals (5; at most a third
                                                 of the lease)
    VIDSEARCH_THREADS          -                 ONNX Runtime intra-op threads (0: all cores)
    VIDSEARCH_TRT_CACHE        trt_cache         TensorRT engine cache ($VIDSEARCH_HOME/trt-cache)
    VIDSEARCH_TRT_FP16         trt_fp16          TensorRT FP16, 1/0 (1)
    VIDSEARCH_TRT_PROFILE      trt_profile       TensorRT batch profile MIN,OPT,MAX (1,32,128)
    VIDSEARCH_TRT_WORKSPACE    trt_workspace     TensorRT builder workspace bytes (ONNX Runtime's)
    VIDSEARCH_GPU_DEVICE       gpu_device        GPU index (0)
    VIDSEARCH_GPU_NAME         -                 GPU name in the engine cache path (nvidia-smi)
    VIDSEARCH_HUB_URL          -                 model hub base URL (https://huggingface.co)
    VIDSEARCH_HUB_REGISTRY     -                 JSON file of extra pinned models (none)
    VIDSEARCH_MATRIX_DTYPE     -                 search matrix dtype, float16|float32 (float16)
    VIDSEARCH_SENTENCE_MODEL   -                 sentence embedder ONNX file (the installed one)
    VIDSEARCH_FONT             -                 TrueType font for generated demo text (a system font)
    ========================== ================= =============================================

    ``sources`` says where each field came from: the variable's name, ``config key <key>`` or
    ``default``.
    """

    home: Path
    config: Mapping[str, Any]  # config.json as read at load time (use read_config() for fresh values)
    index: Path | None = None  # None: home/index (see index_dir)
    model: str | None = None
    providers: str | None = None
    broker_url: str | None = None
    visibility_timeout: str | None = None
    stall_s: str = "30"
    max_crashes: str = "3"
    lease_s: str | None = None
    lease_renew_s: str | None = None
    threads: str = "0"
    trt_cache: Path | None = None  # None: home/trt-cache (see trt_cache_dir)
    trt_fp16: Any = None
    trt_profile: Any = None
    trt_workspace: Any = None
    gpu_device: Any = None
    gpu_name: str | None = None
    hub_url: str = "https://huggingface.co"
    hub_registry: str | None = None
    matrix_dtype: str = "float16"
    sentence_model: str | None = None
    font: str | None = None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Resolve every setting from ``environ`` (default ``os.environ``) and ``config.json``."""
        env = os.environ if environ is None else environ
        home = _home(env)
        config = _read_json(home / "config.json")
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, (var, key) in _FIELDS.items():
            value, source = _lookup(env, config, var, key)
            if value is not None:
                values[name] = value
                sources[name] = source
            else:
                sources[name] = DEFAULT
        for name in ("index", "trt_cache"):
            if name in values:
                values[name] = Path(str(values[name])).expanduser()
        sources["home"] = "VIDSEARCH_HOME" if env.get("VIDSEARCH_HOME") else DEFAULT
        return cls(home=home, config=MappingProxyType(config), sources=MappingProxyType(sources), **values)

    @property
    def index_dir(self) -> Path:
        """The index directory: ``VIDSEARCH_INDEX``, else ``$VIDSEARCH_HOME/index``."""
        return self.index if self.index is not None else self.home / "index"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def config_path(self) -> Path:
        return self.home / "config.json"

    @property
    def trt_cache_dir(self) -> Path:
        return self.trt_cache if self.trt_cache is not None else self.home / "trt-cache"


#: field -> (environment variable, config.json key or None)
_FIELDS: dict[str, tuple[str, str | None]] = {
    "index": ("VIDSEARCH_INDEX", None),
    "model": ("VIDSEARCH_MODEL", None),
    "providers": ("VIDSEARCH_PROVIDERS", "providers"),
    "broker_url": ("VIDSEARCH_BROKER_URL", "broker_url"),
    "visibility_timeout": ("VIDSEARCH_VISIBILITY_TIMEOUT", None),
    "stall_s": ("VIDSEARCH_STALL_S", None),
    "max_crashes": ("VIDSEARCH_MAX_CRASHES", None),
    "lease_s": ("VIDSEARCH_LEASE_S", None),
    "lease_renew_s": ("VIDSEARCH_LEASE_RENEW_S", None),
    "threads": ("VIDSEARCH_THREADS", None),
    "trt_cache": ("VIDSEARCH_TRT_CACHE", "trt_cache"),
    "trt_fp16": ("VIDSEARCH_TRT_FP16", "trt_fp16"),
    "trt_profile": ("VIDSEARCH_TRT_PROFILE", "trt_profile"),
    "trt_workspace": ("VIDSEARCH_TRT_WORKSPACE", "trt_workspace"),
    "gpu_device": ("VIDSEARCH_GPU_DEVICE", "gpu_device"),
    "gpu_name": ("VIDSEARCH_GPU_NAME", None),
    "hub_url": ("VIDSEARCH_HUB_URL", None),
    "hub_registry": ("VIDSEARCH_HUB_REGISTRY", None),
    "matrix_dtype": ("VIDSEARCH_MATRIX_DTYPE", None),
    "sentence_model": ("VIDSEARCH_SENTENCE_MODEL", None),
    "font": ("VIDSEARCH_FONT", None),
}

#: every variable :meth:`Settings.load` reads
VARIABLES = ("VIDSEARCH_HOME",) + tuple(var for var, _ in _FIELDS.values())


def _home(env: Mapping[str, str]) -> Path:
    if env.get("VIDSEARCH_HOME"):
        return Path(env["VIDSEARCH_HOME"]).expanduser()
    xdg = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "vidsearch"


def _lookup(env: Mapping[str, str], config: Mapping[str, Any], var: str, key: str | None) -> tuple[Any, str]:
    """(value, source): a non-empty variable, else a non-empty config key, else (None, default)."""
    if env.get(var) not in (None, ""):
        return env[var], var
    if key is not None and config.get(key) not in (None, ""):
        return config[key], f"config key {key}"
    return None, DEFAULT


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# -- the settings in effect ------------------------------------------------------------------

_active: Settings | None = None
_lock = threading.Lock()


def current() -> Settings:
    """The settings in effect: the ones :func:`use` installed (the CLI's), else loaded now."""
    active = _active
    return active if active is not None else Settings.load()


@contextlib.contextmanager
def use(settings: Settings) -> Iterator[Settings]:
    """Make ``settings`` what :func:`current` returns in this process until the block ends."""
    global _active
    with _lock:
        previous, _active = _active, settings
    try:
        yield settings
    finally:
        with _lock:
            _active = previous


def activate(settings: Settings) -> Settings:
    """Make ``settings`` current for the rest of the process (a worker process's settings)."""
    global _active
    with _lock:
        _active = settings
    return settings


# -- paths and config.json (helpers over current()) ------------------------------------------


def home() -> Path:
    return current().home


def models_dir() -> Path:
    return current().models_dir


def default_index_dir() -> Path:
    return current().index_dir


def config_path() -> Path:
    return current().config_path


def read_config() -> dict[str, Any]:
    """``config.json`` as it is now (it may have changed since the settings were loaded)."""
    return _read_json(config_path())


def configured_broker_url(explicit: str | None = None) -> str | None:
    """The Celery broker URL: ``explicit``, else ``$VIDSEARCH_BROKER_URL``, else ``broker_url`` in
    config.json, else None."""
    return explicit or current().broker_url or None


def write_config(**updates: Any) -> dict[str, Any]:
    cfg = read_config()
    cfg.update(updates)
    p = config_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")
    os.replace(tmp, p)
    return cfg
