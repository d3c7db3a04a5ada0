"""Cases: the ranges a person kept while reviewing, with notes and relevance marks, stored as JSON
under ``<index>/cases/`` (so they survive a restart), and exported as evidence.

The export is the ordinary evidence export of the kept ranges; its manifest also records the
review: who-marked-what-when (``review.marks``) and when each range was kept, with its note.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import threading
from pathlib import Path

from vidsearch.errors import UserError

CASES_DIR = "cases"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
_lock = threading.Lock()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def case_slug(name: str) -> str:
    """The file name of a case; names are letters, digits, space, ``_ . -`` (no path tricks)."""
    name = (name or "").strip()
    if not _NAME.match(name) or ".." in name:
        raise UserError(f"bad case name {name[:40]!r}: use up to 64 letters, digits, spaces, '_', '.', '-'")
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.") or "case"


def range_id(video_id: str, start: float, end: float) -> str:
    """A stable short id of a range (video + times to the millisecond)."""
    return hashlib.sha256(f"{video_id}:{float(start):.3f}:{float(end):.3f}".encode()).hexdigest()[:16]


class CaseStore:
    """Every case of one index directory."""

    def __init__(self, index_root: str | os.PathLike):
        self.root = Path(index_root) / CASES_DIR

    def path(self, name: str) -> Path:
        return self.root / f"{case_slug(name)}.json"

    def export_root(self, name: str) -> Path:
        return self.root / case_slug(name) / "exports"

    def names(self) -> list[dict]:
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.glob("*.json")):
            try:
                c = json.loads(p.read_text())
                out.append({"name": c["name"], "ranges": len(c.get("ranges", [])), "updated_at": c.get("updated_at")})
            except (OSError, ValueError, KeyError):
                continue
        return out

    def load(self, name: str, create: bool = False) -> dict:
        p = self.path(name)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            if not create:
                raise UserError(f"no case named {name!r}") from None
        except ValueError as e:
            raise UserError(f"case {name!r} is not readable JSON ({e})") from None
        return {"name": name.strip(), "created_at": _now(), "updated_at": _now(), "model_id": None, "semantics": None,
                "ranges": [], "marks": [], "exports": []}

    def save(self, case: dict) -> dict:
        case["updated_at"] = _now()
        p = self.path(case["name"])
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, p)
        return case

    # -- changes (each one load -> change -> save under a lock) -------------------------------
    def keep(self, name: str, rng: dict, query: dict | None = None, note: str = "") -> dict:
        """Add a range (a ``TimeRange.to_dict()`` plus ``model_id``) to the case, creating the case."""
        with _lock:
            case = self.load(name, create=True)
            model_id = rng.get("model_id")
            if case["model_id"] and model_id and model_id != case["model_id"]:
                raise UserError(f"case {name!r} holds ranges of model {case['model_id']}; this range is from {model_id}")
            case["model_id"] = case["model_id"] or model_id
            case["semantics"] = case.get("semantics") or rng.get("semantics")
            rid = range_id(rng["video_id"], rng["start"], rng["end"])
            if not any(r["id"] == rid for r in case["ranges"]):
                keep = {k: rng.get(k) for k in ("video_id", "path", "start", "end", "peak_time", "peak_score", "score", "frames")}
                case["ranges"].append({"id": rid, **keep, "note": note, "kept_at": _now(), "query": query or {}})
            return self.save(case)

    def update(self, name: str, rid: str, note: str | None = None, remove: bool = False) -> dict:
        with _lock:
            case = self.load(name)
            if not any(r["id"] == rid for r in case["ranges"]):
                raise UserError(f"case {name!r} has no range {rid[:16]!r}")
            if remove:
                case["ranges"] = [r for r in case["ranges"] if r["id"] != rid]
            elif note is not None:
                for r in case["ranges"]:
                    if r["id"] == rid:
                        r["note"] = note[:4000]
            return self.save(case)

    def mark(self, name: str, rng: dict, relevant: bool, query: str = "") -> dict:
        """Record that a person marked a range relevant / not relevant (kept in order, with the time)."""
        with _lock:
            case = self.load(name, create=True)
            case["marks"].append({
                "id": range_id(rng["video_id"], rng["start"], rng["end"]), "video_id": rng["video_id"],
                "start": float(rng["start"]), "end": float(rng["end"]),
                "verdict": "relevant" if relevant else "not relevant", "at": _now(), "query": query,
            })
            return self.save(case)


def case_results(case: dict) -> dict:
    """The case as a result set for :func:`vidsearch.evidence.export.export_evidence`."""
    if not case["ranges"]:
        raise UserError(f"case {case['name']!r} has no ranges yet: keep some first")
    return {
        "query": f"case: {case['name']}", "model_id": case["model_id"], "semantics": case.get("semantics"),
        "prompts": [], "negatives": [], "images": [], "threshold": None, "smooth_s": None,
        "ranges": [{k: r.get(k) for k in ("video_id", "path", "start", "end", "peak_time", "peak_score", "score", "frames")}
                   for r in case["ranges"]],
    }


def review_record(case: dict) -> dict:
    """What the manifest says about the review: the kept ranges (rank order), notes, and every mark."""
    return {
        "case": case["name"], "created_at": case.get("created_at"),
        "kept": [{"rank": i, "id": r["id"], "video_id": r["video_id"], "start": r["start"], "end": r["end"],
                  "kept_at": r.get("kept_at"), "note": r.get("note", ""), "query": r.get("query", {})}
                 for i, r in enumerate(case["ranges"], 1)],
        "marks": list(case.get("marks", [])),
    }


def export_case(store, cases: CaseStore, name: str, clips: bool = True, pad_s: float = 0.0) -> dict:
    """Run the evidence export on the case into ``<index>/cases/<slug>/exports/<UTC time>/`` and add
    the review to the manifest (re-hashed). Returns the export report plus the directory name."""
    from vidsearch.evidence.export import export_evidence
    from vidsearch.evidence.model import export_context

    case = cases.load(name)
    results = case_results(case)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    out = cases.export_root(name) / stamp
    ctx = export_context(store, results["model_id"])
    report = export_evidence(results, out, model=ctx.model, videos=ctx.videos, index=str(store.root), clips=clips,
                             pad_s=pad_s, model_warnings=ctx.warnings)
    digest = add_review(out, review_record(case))
    with _lock:
        case = cases.load(name)
        case["exports"].append({"dir": stamp, "at": _now(), "manifest_sha256": digest, "ranges": report.ranges})
        cases.save(case)
    return {**report.to_dict(), "manifest_sha256": digest, "export": stamp}


def add_review(out_dir: Path, review: dict) -> str:
    """Put ``review`` into an export's manifest and write its new SHA-256 (canonical form kept)."""
    from vidsearch.evidence.manifest import canonical_json

    manifest = json.loads((out_dir / "manifest.json").read_bytes())
    manifest["review"] = review
    data = canonical_json(manifest)
    (out_dir / "manifest.json").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (out_dir / "manifest.sha256").write_text(f"{digest}  manifest.json\n")
    return digest
