"""``vidsearch doctor``: what this machine can run, as one report dict.

:func:`collect` gathers facts (versions, providers that really work, codecs, GPU, model, broker);
:func:`checks` turns a report into OK/FAIL/WARN/INFO lines. Nothing here prints.
"""
from __future__ import annotations

import platform
import socket
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vidsearch import __version__
from vidsearch.errors import ModelError, one_line
from vidsearch.settings import home

OK, FAIL, WARN, INFO = "OK", "FAIL", "WARN", "INFO"


def _onnxruntime() -> dict[str, Any]:
    from vidsearch.models import providers as P

    try:
        import onnxruntime as ort
    except Exception as e:  # pragma: no cover - onnxruntime is a hard dependency
        return {"ok": False, "error": one_line(e)}
    available = P.available_providers()
    usable = {}
    for name in P.AUTO_ORDER:
        if name in available:
            usable[P.short_name(name)] = P.probe_provider(name)
    return {
        "ok": True,
        "version": ort.__version__,
        "device": ort.get_device(),
        "available": available,
        "usable": usable,
    }


def _provider_choice(ort_report: dict[str, Any], model_id: str | None, choice: str | None = None) -> dict[str, Any]:
    from vidsearch.models import providers as P

    out: dict[str, Any] = {"choice": None, "would_use": None, "error": None, "trt_cache": str(P.trt_cache_root())}
    try:
        choice = P.normalise_choice(choice)  # None: env / config / auto
        out["choice"] = choice
        settings = P.TensorRTSettings.from_env()
        out["trt_fp16"] = settings.fp16
        out["trt_profile"] = list(settings.profile)
        usable = [k for k, v in ort_report.get("usable", {}).items() if v.get("usable")]
        if choice == "auto":
            out["would_use"] = next((c for c in ("tensorrt", "cuda", "cpu") if c in usable), "cpu")
        elif choice in usable:
            out["would_use"] = choice
        else:
            out["error"] = f"providers is set to {choice} but {choice} does not work here"
        if out["would_use"] == "tensorrt" and model_id:
            out["trt_engine_dir"] = str(P.engine_cache_path(model_id, root=settings.cache_root,
                                                           device_id=settings.device_id))
    except ModelError as e:
        out["error"] = str(e)
    return out


def _av() -> dict[str, Any]:
    try:
        import av
    except Exception as e:
        return {"ok": False, "error": one_line(e)}
    decoders = {}
    for name in ("h264", "hevc", "mpeg4", "vp9", "av1"):
        try:
            av.codec.Codec(name, "r")
            decoders[name] = True
        except Exception:
            decoders[name] = False
    ffmpeg = None
    try:
        ffmpeg = ".".join(str(x) for x in av.library_versions.get("libavcodec", ()))
    except Exception:
        pass
    return {"ok": decoders["h264"], "version": av.__version__, "libavcodec": ffmpeg, "decoders": decoders}


def _duckdb() -> dict[str, Any]:
    try:
        import duckdb
    except Exception as e:
        return {"ok": False, "error": one_line(e)}
    return {"ok": True, "version": duckdb.__version__}


def _model(model: str | None) -> dict[str, Any]:
    from vidsearch.models.contract import load_model_info

    try:
        info = load_model_info(model, verify=True)
    except ModelError as e:
        return {"ok": False, "error": str(e)}
    return {
        "ok": True,
        "name": info.name,
        "model_id": info.model_id,
        "path": str(info.path),
        "semantics": info.semantics,
        "image_size": info.image_size,
        "dim": info.dim,
    }


def warmup(model: str | None, providers: str | None = None, batch: int = 1) -> dict[str, Any]:
    """Create the image session of ``model`` and run one batch: on TensorRT this builds the engine
    into the cache (minutes the first time, seconds once cached). Reports what it really runs on."""
    import time

    import numpy as np

    from vidsearch.models.encoder import Encoder
    from vidsearch.models.contract import load_model_info
    from vidsearch.models.providers import engine_cache_path, short_name

    t0 = time.perf_counter()
    try:
        info = load_model_info(model)
        enc = Encoder(info, providers=providers)
        enc.encode_images(np.zeros((batch, 3, info.image_size, info.image_size), dtype=np.float32))
        got = enc.providers("image")
    except ModelError as e:
        return {"ok": False, "error": str(e), "seconds": round(time.perf_counter() - t0, 2)}
    out = {
        "ok": True, "provider": short_name(got[0]) if got else "cpu", "session_providers": got,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if out["provider"] == "tensorrt":
        out["engine_dir"] = str(engine_cache_path(info.model_id))
    return out


def redact_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable>"
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _broker(explicit: str | None = None, timeout: float = 1.0) -> dict[str, Any]:
    from vidsearch.settings import configured_broker_url

    url = configured_broker_url(explicit)
    if not url:
        return {"configured": False, "ok": None,
                "detail": "not configured (no --broker, VIDSEARCH_BROKER_URL or broker_url in config.json)"}
    out: dict[str, Any] = {"configured": True, "url": redact_url(url), "ok": False}
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        try:
            import redis
        except ImportError:
            out["error"] = "the redis package is not installed (pip install 'vidsearch[distributed]')"
            return out
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
            out["ok"] = bool(client.ping())
            out["detail"] = "redis ping ok"
        except Exception as e:
            out["error"] = one_line(e)
        return out
    # other brokers (amqp://...): a TCP connect is what we can check without their client
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or {"amqp": 5672, "amqps": 5671}.get(scheme)
    if not host or not port:
        out["error"] = f"cannot tell host and port from {redact_url(url)}"
        return out
    try:
        with socket.create_connection((host, port), timeout=timeout):
            out["ok"] = True
            out["detail"] = f"tcp connect to {host}:{port} ok"
    except OSError as e:
        out["error"] = f"cannot connect to {host}:{port}: {e.strerror or e}"
    return out


def collect(model: str | None = None, providers: str | None = None, warm: bool = False,
            broker: str | None = None) -> dict[str, Any]:
    """Everything ``vidsearch doctor`` reports, as plain JSON-able data.

    ``providers`` is the choice to check (None: env ``VIDSEARCH_PROVIDERS``, config, else auto).
    ``warm`` also runs the model's image encoder once (see :func:`warmup`).
    """
    from vidsearch.models.providers import gpu_info

    ort_report = _onnxruntime()
    model_report = _model(model)
    report = {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "vidsearch": {"version": __version__, "home": str(home())},
        "onnxruntime": ort_report,
        "providers": _provider_choice(ort_report, model_report.get("model_id"), providers),
        "gpu": gpu_info(),
        "av": _av(),
        "duckdb": _duckdb(),
        "model": model_report,
        "broker": _broker(broker),
    }
    if warm:
        report["warmup"] = warmup(model, providers) if model_report["ok"] else {"ok": False, "error": "no usable model"}
    return report


def checks(report: dict[str, Any]) -> list[dict[str, str]]:
    """One line per check: ``{"check", "status", "detail"}`` with status OK/FAIL/WARN/INFO."""
    rows: list[dict[str, str]] = []

    def add(check: str, status: str, detail: str) -> None:
        rows.append({"check": check, "status": status, "detail": detail})

    add("python", OK, report["python"]["version"])
    add("vidsearch", OK, f"{report['vidsearch']['version']} (home {report['vidsearch']['home']})")
    _onnx_checks(report, add)
    g = report["gpu"]
    add("gpu", INFO, f"{g['name']} (driver {g.get('driver', '?')}, {g.get('memory', '?')})" if g else "none found (no nvidia-smi)")
    a = report["av"]
    if "version" in a:
        decs = ", ".join(f"{k}{'' if v else ' (missing)'}" for k, v in a["decoders"].items())
        add("pyav", OK if a["ok"] else FAIL, f"{a['version']} libavcodec {a.get('libavcodec')}; decoders: {decs}")
    else:
        add("pyav", FAIL, a.get("error", "?"))
    d = report["duckdb"]
    add("duckdb", OK if d.get("ok") else FAIL, d.get("version") or d.get("error", "?"))
    m = report["model"]
    if m["ok"]:
        sem = "" if m["semantics"] == "clip" else f", semantics={m['semantics']}"
        add("model", OK, f"{m['model_id']} at {m['path']} (sha256 verified{sem})")
    else:
        add("model", FAIL, m["error"])
    b = report["broker"]
    if not b["configured"]:
        add("broker", INFO, b["detail"])
    else:
        add("broker", OK if b["ok"] else FAIL, f"{b['url']}: {b.get('detail') or b.get('error')}")
    w = report.get("warmup")
    if w is not None:
        if w["ok"]:
            detail = f"image encoder runs on {w['provider']} ({w['seconds']:.1f} s to start and run one batch)"
            if w.get("engine_dir"):
                detail += f"; engine cache {w['engine_dir']}"
            add("warm-up", OK, detail)
        else:
            add("warm-up", FAIL, w["error"])
    return rows


def _onnx_checks(report: dict[str, Any], add) -> None:
    """onnxruntime, each execution provider, and the providers setting."""
    o = report["onnxruntime"]
    if o.get("ok"):
        add("onnxruntime", OK, f"{o['version']} (providers listed: {', '.join(o['available'])})")
        for short in ("tensorrt", "cuda", "cpu"):
            probe = o["usable"].get(short)
            if probe is None:
                add(f"provider {short}", INFO, "not in this onnxruntime build (GPU needs onnxruntime-gpu)")
            elif probe["usable"]:
                add(f"provider {short}", OK, "session created and ran")
            else:
                add(f"provider {short}", WARN if short != "cpu" else FAIL, probe.get("error") or "not usable")
    else:
        add("onnxruntime", FAIL, o.get("error", "?"))
    p = report["providers"]
    if p.get("error"):
        add("providers setting", FAIL, p["error"])
    else:
        detail = f"{p['choice']} -> {p['would_use']}"
        if p.get("trt_engine_dir"):
            detail += f" (engine cache {p['trt_engine_dir']})"
        add("providers setting", OK, detail)


def healthy(report: dict[str, Any]) -> bool:
    """True when no check failed."""
    return all(r["status"] != FAIL for r in checks(report))
