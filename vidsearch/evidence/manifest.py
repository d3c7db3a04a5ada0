"""The evidence manifest: what was exported, from what, with which model, and every file's SHA-256.

``manifest.json`` is written in a canonical form (UTF-8, keys sorted, two-space indent, one
trailing newline), so the hash of its bytes is the hash of its canonical JSON. A manifest
cannot contain its own hash: that lives in ``manifest.sha256``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

from vidsearch import __version__
from vidsearch.models.contract import sha256_file

FORMAT = "vidsearch-evidence/1"

#: what a manifest keeps of each range
RANGE_KEYS = ("rank", "video_id", "path", "start", "end", "peak_time", "peak_score", "score", "frames", "thumbnail", "clip")


def canonical_json(data: Any) -> bytes:
    """The one serialisation the manifest hash is taken over."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def hashed_images(paths: Sequence) -> list[dict]:
    """Example images with their SHA-256 (None where the file cannot be read now)."""
    out = []
    for p in paths:
        try:
            out.append({"path": str(p), "sha256": sha256_file(p)})
        except OSError:
            out.append({"path": str(p), "sha256": None})
    return out


def build_manifest(results: dict, ranges: list[dict], sources: list[dict], model: dict, *, index: str | None,
                   copy: bool, warnings: list[str], now: _dt.datetime | None = None) -> dict:
    """The manifest, less ``files`` (added once every file is written). ``model``: the record of
    :mod:`vidsearch.evidence.model` (``name``, ``semantics``, ``files`` hashed at export time,
    ``files_match_model_id``, and ``recorded_files`` for a model not installed here)."""
    return {
        "format": FORMAT,
        "tool": {"name": "vidsearch", "version": __version__},
        "created_at": (now or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds"),
        "index": index,
        "query": {
            "label": results.get("query", ""),
            "prompts": list(results.get("prompts") or []),
            "negatives": list(results.get("negatives") or []),
            "images": hashed_images(results.get("images") or []),
            "threshold": results.get("threshold"),
            "smooth_s": results.get("smooth_s"),
        },
        "model": {
            "model_id": results["model_id"], "name": model.get("name"), "semantics": results.get("semantics") or model.get("semantics"),
            "files": dict(model.get("files") or {}), "files_match_model_id": model.get("files_match_model_id"),
            **({"recorded_files": model["recorded_files"]} if model.get("recorded_files") else {}),
        },
        "sources": sources,
        "ranges": [{**{k: r.get(k) for k in RANGE_KEYS}, **({"box": r["box"]} if r.get("box") else {})} for r in ranges],
        "clip_method": "stream copy from the keyframe at or before each range start (re-encode where the copy fails)" if copy
        else "re-encoded from each range start",
        "warnings": warnings,
    }


def write_manifest(out_dir: Path, manifest: dict) -> str:
    """manifest.json (canonical) and manifest.sha256; returns the manifest's SHA-256."""
    data = canonical_json(manifest)
    (out_dir / "manifest.json").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (out_dir / "manifest.sha256").write_text(f"{digest}  manifest.json\n")
    return digest


def verify_manifest(out_dir: str | os.PathLike) -> list[str]:
    """Problems found re-checking an export (empty list: everything matches)."""
    out_dir = Path(out_dir)
    problems = []
    data = (out_dir / "manifest.json").read_bytes()
    line = (out_dir / "manifest.sha256").read_text().split()
    if not line or hashlib.sha256(data).hexdigest() != line[0]:
        problems.append("manifest.json does not match manifest.sha256")
    manifest = json.loads(data)
    if canonical_json(manifest) != data:
        problems.append("manifest.json is not in canonical form")
    for rel, sha in manifest.get("files", {}).items():
        p = out_dir / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(p) != sha:
            problems.append(f"{rel}: SHA-256 differs")
    return problems
