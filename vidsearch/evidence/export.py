"""Evidence export: thumbnails, clips, a static HTML report and a hashed manifest for a result set.

``vidsearch export RESULTS --out DIR`` turns the JSON of ``vidsearch query --json`` (or of
``vidsearch events --json``) into::

    DIR/report.html        static, self-contained HTML (inline SVG plots, no JavaScript)
    DIR/thumbs/*.jpg       the frame at each range's peak time
    DIR/clips/*.mp4        each range, cut from the source (see below)
    DIR/scores.csv         every frame's score (video_id, pts, score), when the model is installed
    DIR/manifest.json      what was exported, from what, with which model, and every file's SHA-256
    DIR/manifest.sha256    the SHA-256 of manifest.json (``sha256sum -c manifest.sha256`` checks it)

Sources are re-hashed at export time and compared with the ``video_id`` they were indexed
under (the SHA-256 of the content): a file that changed or vanished since indexing stops the
export unless ``allow_mismatch`` is set, and is then marked ``"verified": false``.

Clips are remuxed without re-encoding (stream copy): a copy can only start on a keyframe, so a
clip starts at the last keyframe at or before the range start (up to one keyframe interval
early) and ends with the first packet at or after the range end. When the copy fails (a codec
the MP4 container cannot hold, a damaged stream), the range is decoded and re-encoded to H.264,
starting exactly at the range start; the manifest records which method made each clip. Clips
carry the video stream only.

``manifest.json`` is written in a canonical form (UTF-8, keys sorted, two-space indent, one
trailing newline), so the hash of its bytes is the hash of its canonical JSON. A manifest
cannot contain its own hash: that lives in ``manifest.sha256`` (and is printed).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import html
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from vidsearch import __version__
from vidsearch.errors import first_line, UserError, VideoError
from vidsearch.models.contract import IMAGE_FILE, TEXT_FILE, sha256_file
from vidsearch.core.ranges import format_ts, smooth
from vidsearch.media.thumbs import write_thumbnail
from vidsearch.index.catalog import Catalog

log = logging.getLogger(__name__)

FORMAT = "vidsearch-evidence/1"


# -- results -------------------------------------------------------------------------------
def load_results(source: str | os.PathLike | dict, stdin=None) -> dict:
    """A result set: the JSON of ``vidsearch query --json`` or ``vidsearch events --json`` ('-' = stdin)."""
    if isinstance(source, dict):
        data = source
    else:
        try:
            text = (stdin.read() if stdin is not None else "") if str(source) == "-" else Path(source).read_text()
            data = json.loads(text)
        except OSError as e:
            raise UserError(f"cannot read {source}: {e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{source} is not JSON ({e.msg} at line {e.lineno}); pass the output of `vidsearch query --json`") from None
    if not isinstance(data, dict) or ("ranges" not in data and "videos" not in data) or not data.get("model_id"):
        raise UserError(f"{source} is not a result set; write one with: vidsearch query \"...\" --json > results.json")
    ranges = data.get("ranges")
    if ranges is None:  # events JSON: every event of every video, in time order
        ranges = [dict(e, path=e.get("path") or v.get("path")) for v in data["videos"] for e in v.get("events", [])]
    for r in ranges:
        missing = [k for k in ("video_id", "start", "end", "peak_time") if k not in r]
        if missing:
            raise UserError(f"{source}: a range lacks {', '.join(missing)}; pass the output of `vidsearch query --json`")
    return {**data, "ranges": ranges}


# -- sources ---------------------------------------------------------------------------------
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
        if vid in out:
            continue
        path = r.get("path")
        if not path:
            out[vid] = SourceCheck(vid, None, None, None, "the result has no path for this video")
            continue
        try:
            out[vid] = SourceCheck(vid, path, sha256_file(path), os.path.getsize(path))
        except OSError as e:
            out[vid] = SourceCheck(vid, path, None, None, f"cannot read: {e.strerror or e}")
            continue
        if not out[vid].verified:
            out[vid].error = "content changed since it was indexed (SHA-256 differs from video_id)"
    return out


# -- thumbnails ------------------------------------------------------------------------------
# -- clips -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Clip:
    path: Path
    method: str  # "stream-copy" | "re-encode"
    start: float  # source time of the clip's first frame
    end: float  # source time where the clip ends
    frames: int

    def to_dict(self, root: Path) -> dict:
        return {
            "path": self.path.relative_to(root).as_posix(), "sha256": sha256_file(self.path), "method": self.method,
            "start": round(self.start, 3), "end": round(self.end, 3), "frames": self.frames,
        }


def cut_clip(src: str, start: float, end: float, target: Path, copy: bool = True) -> Clip:
    """``[start, end)`` of ``src`` as an MP4: stream copy from the keyframe before ``start``, else re-encode."""
    import av

    target.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        try:
            return _copy_clip(src, start, end, target)
        except (av.FFmpegError, ValueError, OSError, TypeError, VideoError) as e:
            log.warning("%s: stream copy of %.1f-%.1fs failed (%s); re-encoding", src, start, end, first_line(e))
            target.unlink(missing_ok=True)
    try:
        return _reencode_clip(src, start, end, target)
    except (av.FFmpegError, ValueError, OSError) as e:
        target.unlink(missing_ok=True)
        raise VideoError(f"{src}: cannot cut {start:.1f}-{end:.1f}s ({first_line(e)})") from None


def _copy_clip(src: str, start: float, end: float, target: Path) -> Clip:
    import av

    with av.open(src, metadata_errors="ignore") as inp:
        ist = inp.streams.video[0]
        tb = ist.time_base
        s0 = ist.start_time or 0
        if start > 0:
            inp.seek(int(start / tb) + s0, stream=ist, backward=True, any_frame=False)
        base = None
        first_t = last_t = None
        n = 0
        with av.open(str(target), "w") as out:
            ost = out.add_stream_from_template(ist)
            for pkt in inp.demux(ist):
                if pkt.dts is None or pkt.pts is None:
                    continue  # the demuxer's final empty packet
                t = float((pkt.pts - s0) * tb)
                if base is None:
                    if not pkt.is_keyframe:
                        continue  # a copy can only begin on a keyframe
                    base = pkt.dts
                    first_t = t
                if n and float((pkt.dts - s0) * tb) >= end - 1e-6:
                    break
                dur = float(pkt.duration * tb) if pkt.duration else 0.0
                last_t = t + dur if last_t is None else max(last_t, t + dur)
                pkt.pts -= base
                pkt.dts -= base
                pkt.stream = ost
                out.mux(pkt)
                n += 1
        if n == 0:
            raise VideoError(f"{src}: no packets between {start:.1f}s and {end:.1f}s")
    return Clip(target, "stream-copy", first_t, last_t, n)


def _reencode_clip(src: str, start: float, end: float, target: Path) -> Clip:
    import fractions

    import av

    with av.open(src, metadata_errors="ignore") as inp:
        ist = inp.streams.video[0]
        tb = ist.time_base
        s0 = ist.start_time or 0
        rate = ist.average_rate or ist.guessed_rate or fractions.Fraction(25)
        if start > 0:
            inp.seek(int(start / tb) + s0, stream=ist, backward=True, any_frame=False)
        n = 0
        first_t = last_t = None
        with av.open(str(target), "w") as out:
            ost = out.add_stream("libx264", rate=rate)
            ost.width = max(2, ist.codec_context.width // 2 * 2)
            ost.height = max(2, ist.codec_context.height // 2 * 2)
            ost.pix_fmt = "yuv420p"
            ost.time_base = 1 / fractions.Fraction(rate)
            ost.options = {"preset": "veryfast", "crf": "18"}
            for frame in inp.decode(ist):
                if frame.pts is None:
                    continue
                t = float((frame.pts - s0) * tb)
                if t < start - 1e-6:
                    continue
                if t >= end - 1e-6:
                    break
                first_t = t if first_t is None else first_t
                last_t = t + 1 / float(rate)
                f = frame.reformat(width=ost.width, height=ost.height, format="yuv420p")
                f.pts = int(round((t - first_t) * float(rate)))
                for p in ost.encode(f):
                    out.mux(p)
                n += 1
            for p in ost.encode():
                out.mux(p)
        if n == 0:
            raise VideoError(f"{src}: no frames between {start:.1f}s and {end:.1f}s")
    return Clip(target, "re-encode", first_t, last_t, n)


# -- catalog ---------------------------------------------------------------------------------
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


# -- scores ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Series:
    pts: np.ndarray
    scores: np.ndarray


def score_series(store, encoder, results: dict, video_ids: Iterable[str]) -> dict[str, Series]:
    """Every frame's score for the result set's query (same formula as the query), per video."""
    from vidsearch.query.engine import contrast_scores, load_frame_index, query_vectors

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


# -- the SVG plot ----------------------------------------------------------------------------
def _nice_step(span: float, target: int = 8) -> float:
    raw = max(span, 1e-9) / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _ts(seconds: float) -> str:
    seconds = max(0.0, seconds)
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def svg_plot(
    series: Series | None,
    ranges: Sequence[dict],
    *,
    duration: float | None = None,
    threshold: float | None = None,
    smooth_s: float | None = None,
    width: int = 960,
    height: int = 200,
) -> str:
    """Score over time as inline SVG: ranges shaded, raw scores thin, smoothed scores thick, threshold dashed."""
    ml, mr, mt, mb = 48, 12, 10, 28
    pw, ph = width - ml - mr, height - mt - mb
    xs_end = [float(r["end"]) for r in ranges]
    t_max = max([duration or 0.0, *xs_end, *(series.pts.tolist()[-1:] if series is not None and len(series.pts) else [])]) or 1.0
    vals = [] if series is None else series.scores.astype(float).tolist()
    extra = [threshold] if threshold is not None and np.isfinite(threshold) else []
    lo = min([0.0, *vals, *extra])
    hi = max([1e-6, *vals, *extra])
    hi += 0.05 * (hi - lo)

    def x(t: float) -> float:
        return ml + pw * (float(t) / t_max)

    def y(v: float) -> float:
        return mt + ph * (1 - (float(v) - lo) / (hi - lo))

    out = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="score over time">',
        f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#ffffff" stroke="#999999"/>',
    ]
    for r in ranges:
        x0, x1 = x(r["start"]), x(r["end"])
        out.append(f'<rect class="range" x="{x0:.1f}" y="{mt}" width="{max(x1 - x0, 1.0):.1f}" height="{ph}" fill="#ffd54f" fill-opacity="0.55"/>')
    step = _nice_step(t_max)
    k = 0
    while k * step <= t_max + 1e-9:
        tx = x(k * step)
        out.append(f'<line x1="{tx:.1f}" y1="{mt + ph}" x2="{tx:.1f}" y2="{mt + ph + 4}" stroke="#666666"/>')
        out.append(f'<text x="{tx:.1f}" y="{height - 8}" font-size="10" text-anchor="middle" fill="#333333">{_ts(k * step)}</text>')
        k += 1
    ystep = _nice_step(hi - lo, 4)
    v = math.ceil(lo / ystep) * ystep
    while v <= hi + 1e-12:
        ty = y(v)
        out.append(f'<line x1="{ml - 4}" y1="{ty:.1f}" x2="{ml + pw}" y2="{ty:.1f}" stroke="#eeeeee"/>')
        out.append(f'<text x="{ml - 6}" y="{ty + 3:.1f}" font-size="10" text-anchor="end" fill="#333333">{v:.2f}</text>')
        v += ystep
    if series is not None and len(series.pts):
        raw = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in zip(series.pts, series.scores))
        out.append(f'<polyline class="raw" points="{raw}" fill="none" stroke="#9ecae1" stroke-width="1"/>')
        sm = smooth(series.pts, series.scores, smooth_s or 0.0)
        pts = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in zip(series.pts, sm))
        out.append(f'<polyline class="score" points="{pts}" fill="none" stroke="#1f77b4" stroke-width="2.5"/>')
    if extra:
        ty = y(threshold)
        out.append(f'<line class="threshold" x1="{ml}" y1="{ty:.1f}" x2="{ml + pw}" y2="{ty:.1f}" stroke="#d62728" stroke-dasharray="6 4"/>')
    for r in ranges:
        if "peak_score" in r:
            out.append(f'<circle cx="{x(r["peak_time"]):.1f}" cy="{y(r["peak_score"]):.1f}" r="3.5" fill="#d62728"/>')
    out.append("</svg>")
    return "\n".join(out)


# -- the report ------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; word-break: break-all; }
table { border-collapse: collapse; margin-top: 8px; } td, th { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
.meta td:first-child { color: #666; } .bad { color: #b00020; font-weight: bold; } .ok { color: #1b5e20; }
img.thumb { width: 240px; height: auto; display: block; border: 1px solid #ccc; }
code { font-size: 12px; } .note { color: #666; font-size: 13px; }
"""


def render_report(manifest: dict, plots: dict[str, str]) -> str:
    e = html.escape
    q = manifest["query"]
    m = manifest["model"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>vidsearch evidence: {e(q['label'])}</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>Evidence report: {e(q['label'])}</h1>",
        '<table class="meta">',
        f"<tr><td>created</td><td>{e(manifest['created_at'])}</td></tr>",
        f"<tr><td>tool</td><td>vidsearch {e(manifest['tool']['version'])}</td></tr>",
        f"<tr><td>model</td><td><code>{e(m['model_id'])}</code> ({e(str(m.get('semantics') or ''))})</td></tr>",
    ]
    for fname, sha in sorted((m.get("files") or {}).items()):
        parts.append(f"<tr><td>{e(fname)}</td><td><code>{e(sha)}</code></td></tr>")
    if q.get("prompts"):
        parts.append(f"<tr><td>prompts</td><td>{e(' | '.join(q['prompts']))}</td></tr>")
    if q.get("negatives"):
        parts.append(f"<tr><td>not</td><td>{e(' | '.join(q['negatives']))}</td></tr>")
    for im in q.get("images") or []:
        parts.append(f"<tr><td>example image</td><td>{e(im['path'])} <code>{e(str(im.get('sha256')))}</code></td></tr>")
    if q.get("threshold") is not None:
        parts.append(f"<tr><td>threshold</td><td>{q['threshold']:.4f}</td></tr>")
    parts.append(f"<tr><td>ranges</td><td>{len(manifest['ranges'])}</td></tr></table>")
    parts.append('<p class="note">The SHA-256 of manifest.json is in manifest.sha256 (check with <code>sha256sum -c manifest.sha256</code>). '
                 "Clips made by stream copy begin at the keyframe at or before the range start.</p>")
    by_video: dict[str, list[dict]] = {}
    for r in manifest["ranges"]:
        by_video.setdefault(r["video_id"], []).append(r)
    sources = {s["video_id"]: s for s in manifest["sources"]}
    for vid, rs in by_video.items():
        src = sources.get(vid, {})
        status = ('<span class="ok">source verified: SHA-256 matches the index</span>' if src.get("verified")
                  else f'<span class="bad">SOURCE NOT VERIFIED: {e(str(src.get("error") or "unknown"))}</span>')
        parts.append(f'<section class="video" data-video-id="{e(vid)}"><h2>{e(str(src.get("path") or vid))}</h2>')
        parts.append(f"<p><code>{e(vid)}</code> {status}</p>")
        parts.append(plots.get(vid, ""))
        parts.append("<table><tr><th>#</th><th>start</th><th>end</th><th>duration</th><th>peak</th><th>score</th><th>thumbnail</th><th>clip</th></tr>")
        for r in sorted(rs, key=lambda r: r["start"]):
            thumb = (f'<img class="thumb" src="{e(r["thumbnail"]["path"])}" alt="frame at {format_ts(r["peak_time"])}">'
                     if r.get("thumbnail") else "-")
            clip = "-"
            if r.get("clip"):
                c = r["clip"]
                clip = f'<a href="{e(c["path"])}">{e(Path(c["path"]).name)}</a><br><span class="note">{e(c["method"])}, {format_ts(c["start"])}-{format_ts(c["end"])}</span>'
            score = f"{r['peak_score']:.3f}" if r.get("peak_score") is not None else "-"
            parts.append(
                f"<tr><td>{r['rank']}</td><td>{format_ts(r['start'])}</td><td>{format_ts(r['end'])}</td><td>{r['end'] - r['start']:.1f}s</td>"
                f"<td>{format_ts(r['peak_time'])}</td><td>{score}</td><td>{thumb}</td><td>{clip}</td></tr>"
            )
        parts.append("</table></section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# -- manifest --------------------------------------------------------------------------------
def canonical_json(data: Any) -> bytes:
    """The one serialisation the manifest hash is taken over."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


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
    now: _dt.datetime | None = None,
    progress=None,
) -> ExportReport:
    """Write the evidence directory for ``results`` (see module docstring).

    ``series``: per-video frame scores for the plots (from :func:`score_series`); ``model``:
    what is known about the model (``name``, ``files`` sha256s, ``semantics``); ``videos``:
    catalog rows per video_id (``duration``, ``creation_time``...).
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not empty: export into a new directory (evidence is never overwritten)")
    results = load_results(results)
    ranges = [dict(r) for r in results["ranges"]]
    videos = videos or {}
    warnings: list[str] = []
    checks = check_sources(ranges)
    bad = [c for c in checks.values() if not c.verified]
    if bad and not allow_mismatch:
        c = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UserError(
            f"{c.path or c.video_id}: {c.error}{more}; re-ingest and query again, or pass --allow-mismatch "
            "to export anyway with the source marked unverified"
        )
    for c in bad:
        warnings.append(f"SOURCE NOT VERIFIED: {c.path or c.video_id}: {c.error}")
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    n_thumbs = n_clips = 0
    for rank, r in enumerate(ranges, 1):
        r["rank"] = rank
        chk = checks[r["video_id"]]
        if progress:
            progress(rank, len(ranges), r)
        if chk.sha256 is None:
            continue  # nothing to cut from
        name = _slug(r["video_id"], rank)
        try:
            t = write_thumbnail(chk.path, float(r["peak_time"]), out / "thumbs" / f"{name}_{float(r['peak_time']):09.3f}.jpg", quality=90)
            rel = t.relative_to(out).as_posix()
            r["thumbnail"] = {"path": rel, "sha256": sha256_file(t), "time": round(float(r["peak_time"]), 3)}
            files[rel] = r["thumbnail"]["sha256"]
            n_thumbs += 1
        except VideoError as e:
            warnings.append(f"no thumbnail for range {rank}: {e}")
            r["thumbnail"] = None
        if clips:
            s = max(0.0, float(r["start"]) - pad_s)
            e_ = float(r["end"]) + pad_s
            try:
                clip = cut_clip(chk.path, s, e_, out / "clips" / f"{name}_{s:09.3f}-{e_:09.3f}.mp4", copy=copy)
                r["clip"] = clip.to_dict(out)
                files[r["clip"]["path"]] = r["clip"]["sha256"]
                n_clips += 1
            except VideoError as e:
                warnings.append(f"no clip for range {rank}: {e}")
                r["clip"] = None
    # the per-frame scores behind the plots
    if series:
        lines = ["video_id,pts,score"]
        for vid, s in series.items():
            lines += [f"{vid},{t:.3f},{v:.6f}" for t, v in zip(s.pts, s.scores)]
        (out / "scores.csv").write_text("\n".join(lines) + "\n")
        files["scores.csv"] = sha256_file(out / "scores.csv")
    model = model or {}
    mfiles = {k: v for k, v in (model.get("files") or {}).items()}
    consistent = None
    if IMAGE_FILE in mfiles and TEXT_FILE in mfiles and model.get("name"):
        digest = hashlib.sha256((mfiles[IMAGE_FILE] + mfiles[TEXT_FILE]).encode()).hexdigest()[:12]
        consistent = f"{model['name']}@{digest}" == results["model_id"]
        if not consistent:
            warnings.append(f"model files do not hash to {results['model_id']}")
    images = []
    for p in results.get("images") or []:
        try:
            images.append({"path": str(p), "sha256": sha256_file(p)})
        except OSError:
            images.append({"path": str(p), "sha256": None})
    threshold = results.get("threshold")
    manifest_ranges = []
    for r in ranges:
        keep = {k: r.get(k) for k in ("rank", "video_id", "path", "start", "end", "peak_time", "peak_score", "score", "frames")}
        keep["thumbnail"] = r.get("thumbnail")
        keep["clip"] = r.get("clip")
        manifest_ranges.append(keep)
    manifest = {
        "format": FORMAT,
        "tool": {"name": "vidsearch", "version": __version__},
        "created_at": (now or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds"),
        "index": index,
        "query": {
            "label": results.get("query", ""),
            "prompts": list(results.get("prompts") or []),
            "negatives": list(results.get("negatives") or []),
            "images": images,
            "threshold": threshold,
            "smooth_s": results.get("smooth_s"),
        },
        "model": {
            "model_id": results["model_id"], "name": model.get("name"), "semantics": results.get("semantics") or model.get("semantics"),
            "files": mfiles, "files_match_model_id": consistent,
        },
        "sources": [
            {**c.to_dict(), **{k: videos.get(c.video_id, {}).get(k) for k in ("duration", "creation_time")}}
            for c in checks.values()
        ],
        "ranges": manifest_ranges,
        "clip_method": "stream copy from the keyframe at or before each range start (re-encode where the copy fails)" if copy
        else "re-encoded from each range start",
        "warnings": warnings,
    }
    # the report (hashed into the manifest), then the manifest, then the manifest's hash
    by_video: dict[str, list[dict]] = {}
    for r in manifest_ranges:
        by_video.setdefault(r["video_id"], []).append(r)
    plots = {
        vid: svg_plot((series or {}).get(vid), rs, duration=videos.get(vid, {}).get("duration"), threshold=threshold,
                      smooth_s=results.get("smooth_s"))
        for vid, rs in by_video.items()
    }
    (out / "report.html").write_text(render_report(manifest, plots), encoding="utf-8")
    files["report.html"] = sha256_file(out / "report.html")
    manifest["files"] = dict(sorted(files.items()))
    data = canonical_json(manifest)
    (out / "manifest.json").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (out / "manifest.sha256").write_text(f"{digest}  manifest.json\n")
    return ExportReport(out, digest, len(ranges), n_thumbs, n_clips, [c.path or c.video_id for c in bad], warnings)
