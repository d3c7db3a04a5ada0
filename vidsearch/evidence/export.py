"""Evidence export: thumbnails, clips, a static HTML report and a hashed manifest for a result set.

``vidsearch export RESULTS --out DIR`` turns the JSON of ``vidsearch query --json`` (or of
``vidsearch events --json``) into::

    DIR/report.html        static, self-contained HTML (inline SVG plots, no JavaScript)
    DIR/thumbs/*.jpg       the frame at each range's peak time
    DIR/clips/*.mp4        each range, cut from the source (:mod:`vidsearch.media.clips`)
    DIR/scores.csv         every frame's score (video_id, pts, score), when the model is installed
    DIR/manifest.json      what was exported, from what, with which model, and every file's SHA-256
    DIR/manifest.sha256    the SHA-256 of manifest.json (``sha256sum -c manifest.sha256`` checks it)

Sources are re-hashed at export time (:mod:`vidsearch.evidence.results`): a file that changed
or vanished since indexing stops the export unless ``allow_mismatch`` is set, and is then marked
``"verified": false``. This module is the orchestration; the report is
:mod:`vidsearch.evidence.report`, the manifest :mod:`vidsearch.evidence.manifest`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from vidsearch.core.clip import contrast_scores
from vidsearch.errors import UserError, VideoError
from vidsearch.evidence.manifest import build_manifest, write_manifest
from vidsearch.evidence.report import Series, render_report, svg_plot
from vidsearch.evidence.results import SourceCheck, check_in_index, check_sources, load_results, require_verified
from vidsearch.media.clips import cut_clip
from vidsearch.media.thumbs import write_thumbnail
from vidsearch.index.frames import load_frame_index
from vidsearch.models.contract import sha256_file
from vidsearch.query.vectors import query_vectors


# -- what the index knows ----------------------------------------------------------------------
def score_series(store, encoder, results: dict, video_ids: Iterable[str]) -> dict[str, Series]:
    """Every frame's score for the result set's query (same formula as the query), per video."""
    prompts = results.get("prompts")
    if prompts is None:  # results from before prompts were recorded: the label is "a | b"
        prompts = [p.strip() for p in str(results.get("query", "")).split(" | ") if p.strip()]
    pos, negs = query_vectors(encoder, prompts, results.get("negatives") or (), results.get("images") or ())
    if not np.any(pos):
        return {}
    index = load_frame_index(store, encoder.info.model_id)
    if not len(index):
        return {}
    scores = contrast_scores(index.scores(pos), [index.scores(n) for n in negs])
    wanted = set(video_ids)
    out = {}
    for code, rows in index.rows_by_video().items():
        vid = index.videos[code]
        if vid in wanted:
            out[vid] = Series(index.pts[rows], scores[rows])
    return out


# -- the export --------------------------------------------------------------------------------
@dataclasses.dataclass
class ExportReport:
    out_dir: Path
    manifest_sha256: str
    ranges: int
    thumbnails: int
    clips: int
    unverified: list[str]
    warnings: list[str]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


def _slug(vid: str, rank: int) -> str:
    return f"r{rank:03d}_{vid[:10]}"


def export_evidence(
    results: dict,
    out_dir: str | os.PathLike,
    *,
    series: dict[str, Series] | None = None,
    model: dict | None = None,
    videos: dict[str, dict] | None = None,
    index: str | None = None,
    clips: bool = True,
    copy: bool = True,
    pad_s: float = 0.0,
    allow_mismatch: bool = False,
    model_warnings: Iterable[str] = (),
    now: _dt.datetime | None = None,
    progress=None,
) -> ExportReport:
    """Write the evidence directory for ``results`` (see module docstring).

    ``series``: per-video frame scores for the plots (from :func:`score_series`); ``model``:
    the record of :func:`vidsearch.evidence.model.export_context` (files hashed at export time);
    ``videos``: catalog rows per video_id (``duration``, ``creation_time``...): every range must
    lie in a video of it. The directory appears whole or not at all.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not empty: export into a new directory (evidence is never overwritten)")
    results = load_results(results)
    ranges = [dict(r) for r in results["ranges"]]
    if videos is not None:
        check_in_index(ranges, videos)
    videos = videos or {}
    checks = check_sources(ranges)
    bad = require_verified(checks, allow_mismatch)
    warnings = [f"SOURCE NOT VERIFIED: {c.path or c.video_id}: {c.error}" for c in bad] + list(model_warnings)
    with _staging(out) as tmp:
        writer = _RangeWriter(tmp, {}, warnings, clips=clips, copy=copy, pad_s=pad_s)
        for rank, r in enumerate(ranges, 1):
            r["rank"] = rank
            if progress:
                progress(rank, len(ranges), r)
            writer.write(r, checks[r["video_id"]])
        sources = [{**c.to_dict(), **{k: videos.get(c.video_id, {}).get(k) for k in ("duration", "creation_time")}}
                   for c in checks.values()]
        manifest = build_manifest(results, ranges, sources, model or {}, index=index, copy=copy, warnings=warnings, now=now)
        digest = _finish(tmp, manifest, writer.files, series or {}, videos, results)
    return ExportReport(out, digest, len(ranges), writer.thumbnails, writer.clips_written, [c.path or c.video_id for c in bad], warnings)


def _finish(out: Path, manifest: dict, files: dict[str, str], series: dict[str, Series], videos: dict, results: dict) -> str:
    """scores.csv, the report (hashed into the manifest), then the manifest and its hash."""
    if series:
        files["scores.csv"] = _write_scores(out / "scores.csv", series)
    plots = _plots(manifest["ranges"], series, videos, results)
    (out / "report.html").write_text(render_report(manifest, plots), encoding="utf-8")
    files["report.html"] = sha256_file(out / "report.html")
    manifest["files"] = dict(sorted(files.items()))
    return write_manifest(out, manifest)


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A hidden sibling directory that becomes ``out`` (an empty ``out`` is replaced) once all is
    written; on any failure it is removed, with any parent directory made for it."""
    made = next((p for p in reversed([out.parent, *out.parent.parents]) if not p.exists()), None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclasses.dataclass
class _RangeWriter:
    """A range's thumbnail (at its peak) and clip, recorded into the range and ``files``; a failure is a warning."""

    out: Path
    files: dict[str, str]
    warnings: list[str]
    clips: bool = True
    copy: bool = True
    pad_s: float = 0.0
    thumbnails: int = 0
    clips_written: int = 0

    def write(self, r: dict, chk: SourceCheck) -> None:
        if chk.sha256 is None:
            return  # nothing to cut from
        name = _slug(r["video_id"], r["rank"])
        self._thumbnail(r, chk.path, name)
        if self.clips:
            self._clip(r, chk.path, name)

    def _thumbnail(self, r: dict, src: str, name: str) -> None:
        peak = float(r["peak_time"])
        try:
            t = write_thumbnail(src, peak, self.out / "thumbs" / f"{name}_{peak:09.3f}.jpg", quality=90, box=r.get("box"))
        except VideoError as e:
            self.warnings.append(f"no thumbnail for range {r['rank']}: {e}")
            r["thumbnail"] = None
            return
        rel = t.relative_to(self.out).as_posix()
        r["thumbnail"] = {"path": rel, "sha256": sha256_file(t), "time": round(peak, 3)}
        self.files[rel] = r["thumbnail"]["sha256"]
        self.thumbnails += 1

    def _clip(self, r: dict, src: str, name: str) -> None:
        s = max(0.0, float(r["start"]) - self.pad_s)
        e_ = float(r["end"]) + self.pad_s
        try:
            clip = cut_clip(src, s, e_, self.out / "clips" / f"{name}_{s:09.3f}-{e_:09.3f}.mp4", copy=self.copy)
        except VideoError as e:
            self.warnings.append(f"no clip for range {r['rank']}: {e}")
            r["clip"] = None
            return
        if clip.audio_error:
            self.warnings.append(f"clip for range {r['rank']}: {clip.audio_error}")
        r["clip"] = {**clip.to_dict(self.out), "sha256": sha256_file(clip.path)}
        self.files[r["clip"]["path"]] = r["clip"]["sha256"]
        self.clips_written += 1


def _write_scores(path: Path, series: dict[str, Series]) -> str:
    """scores.csv: the per-frame scores behind the plots; returns its SHA-256."""
    lines = ["video_id,pts,score"]
    for vid, s in series.items():
        lines += [f"{vid},{t:.3f},{v:.6f}" for t, v in zip(s.pts, s.scores)]
    path.write_text("\n".join(lines) + "\n")
    return sha256_file(path)


def _plots(ranges: list[dict], series: dict[str, Series], videos: dict[str, dict], results: dict) -> dict[str, str]:
    """One SVG plot per video that has ranges."""
    by_video: dict[str, list[dict]] = {}
    for r in ranges:
        by_video.setdefault(r["video_id"], []).append(r)
    return {
        vid: svg_plot(series.get(vid), rs, duration=videos.get(vid, {}).get("duration"), threshold=results.get("threshold"),
                      smooth_s=results.get("smooth_s"))
        for vid, rs in by_video.items()
    }
