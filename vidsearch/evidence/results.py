"""A result set to export (the JSON of ``vidsearch query`` or ``events``), and its sources re-checked.

A source is verified when the SHA-256 of the file as it is now still equals the ``video_id``
it was indexed under (the SHA-256 of its content).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterable

from vidsearch.errors import UserError
from vidsearch.evidence.schema import PUBLISHED, schema_errors
from vidsearch.models.contract import sha256_file


def load_results(source: str | os.PathLike | dict, stdin=None) -> dict:
    """A result set: the JSON of ``vidsearch query --json`` or ``vidsearch events --json`` ('-' = stdin),
    checked against ``schemas/results.schema.json`` and for ordered times (one-line :class:`UserError`)."""
    data = source if isinstance(source, dict) else _read_json(source, stdin)
    name = "the result set" if isinstance(source, dict) else str(source)
    if not isinstance(data, dict) or ("ranges" not in data and "videos" not in data) or not data.get("model_id"):
        raise UserError(f"{name} is not a result set; write one with: vidsearch query \"...\" --json > results.json")
    errors = schema_errors(data)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(f"{name}: {errors[0]}{more}; pass the output of `vidsearch query --json` ({PUBLISHED})")
    ranges = data.get("ranges")
    if ranges is None:  # events JSON: every event of every video, in time order
        ranges = [dict(e, path=e.get("path") or v.get("path")) for v in data["videos"] for e in v.get("events", [])]
    for i, r in enumerate(ranges):
        if not r["start"] < r["end"] or not r["start"] <= r["peak_time"] <= r["end"]:
            raise UserError(f"{name}: range {i + 1} is not ordered (start {r['start']:g}, peak_time {r['peak_time']:g}, "
                            f"end {r['end']:g}): each range needs start <= peak_time <= end and start < end")
    return {**data, "ranges": ranges}


def check_in_index(ranges: Iterable[dict], videos: dict[str, dict]) -> None:
    """Every range's video is in the index (``videos``: catalog rows per video_id) and the range
    lies within that video's duration (half a second of slack for the last frame's end)."""
    for i, r in enumerate(ranges, 1):
        meta = videos.get(r["video_id"])
        if meta is None:
            raise UserError(f"range {i}: video {r['video_id'][:16]}... is not in this index; "
                            "export from the index the results came from (--index DIR)")
        duration = meta.get("duration")
        if duration and r["end"] > float(duration) + 0.5:
            raise UserError(f"range {i}: ends at {r['end']:g}s, beyond the end of its video ({float(duration):g}s)")


def _read_json(source: str | os.PathLike, stdin=None):
    try:
        text = (stdin.read() if stdin is not None else "") if str(source) == "-" else Path(source).read_text()
        return json.loads(text)
    except OSError as e:
        raise UserError(f"cannot read {source}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{source} is not JSON ({e.msg} at line {e.lineno}); pass the output of `vidsearch query --json`") from None


@dataclasses.dataclass
class SourceCheck:
    video_id: str
    path: str | None
    sha256: str | None  # of the file as it is now (None: unreadable)
    size: int | None
    error: str | None = None

    @property
    def verified(self) -> bool:
        return self.sha256 == self.video_id

    def to_dict(self) -> dict:
        return {
            "video_id": self.video_id, "path": self.path, "sha256": self.sha256, "size": self.size,
            "verified": self.verified, **({"error": self.error} if self.error else {}),
        }


def check_sources(ranges: Iterable[dict]) -> dict[str, SourceCheck]:
    """Re-hash every source file once; ``verified`` when its SHA-256 still equals its video_id."""
    out: dict[str, SourceCheck] = {}
    for r in ranges:
        vid = r["video_id"]
        if vid not in out:
            out[vid] = _check_source(vid, r.get("path"))
    return out


def _check_source(vid: str, path: str | None) -> SourceCheck:
    if not path:
        return SourceCheck(vid, None, None, None, "the result has no path for this video")
    try:
        check = SourceCheck(vid, path, sha256_file(path), os.path.getsize(path))
    except OSError as e:
        return SourceCheck(vid, path, None, None, f"cannot read: {e.strerror or e}")
    if not check.verified:
        check.error = "content changed since it was indexed (SHA-256 differs from video_id)"
    return check


def require_verified(checks: dict[str, SourceCheck], allow_mismatch: bool) -> list[SourceCheck]:
    """The unverified sources; a one-line UserError naming the first unless ``allow_mismatch``."""
    bad = [c for c in checks.values() if not c.verified]
    if bad and not allow_mismatch:
        c = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UserError(
            f"{c.path or c.video_id}: {c.error}{more}; re-ingest and query again, or pass --allow-mismatch "
            "to export anyway with the source marked unverified"
        )
    return bad
