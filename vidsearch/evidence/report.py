"""The evidence report: a static, self-contained HTML page with an inline SVG score plot per video."""
from __future__ import annotations

import dataclasses
import html
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.core.ranges import format_ts, smooth
from vidsearch.core.regions import where


@dataclasses.dataclass
class Series:
    """One video's frame times and scores, in time order."""

    pts: np.ndarray
    scores: np.ndarray


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


@dataclasses.dataclass
class _Frame:
    """The plot area and its scales: time 0..t_max across, score lo..hi up."""

    width: int
    height: int
    t_max: float
    lo: float
    hi: float
    ml: int = 48
    mr: int = 12
    mt: int = 10
    mb: int = 28

    @property
    def pw(self) -> int:
        return self.width - self.ml - self.mr

    @property
    def ph(self) -> int:
        return self.height - self.mt - self.mb

    def x(self, t: float) -> float:
        return self.ml + self.pw * (float(t) / self.t_max)

    def y(self, v: float) -> float:
        return self.mt + self.ph * (1 - (float(v) - self.lo) / (self.hi - self.lo))


def _axes(f: _Frame) -> list[str]:
    """Time ticks along the bottom, score grid lines and labels on the left."""
    out = []
    step = _nice_step(f.t_max)
    k = 0
    while k * step <= f.t_max + 1e-9:
        tx = f.x(k * step)
        out.append(f'<line x1="{tx:.1f}" y1="{f.mt + f.ph}" x2="{tx:.1f}" y2="{f.mt + f.ph + 4}" stroke="#666666"/>')
        out.append(f'<text x="{tx:.1f}" y="{f.height - 8}" font-size="10" text-anchor="middle" fill="#333333">{_ts(k * step)}</text>')
        k += 1
    ystep = _nice_step(f.hi - f.lo, 4)
    v = math.ceil(f.lo / ystep) * ystep
    while v <= f.hi + 1e-12:
        ty = f.y(v)
        out.append(f'<line x1="{f.ml - 4}" y1="{ty:.1f}" x2="{f.ml + f.pw}" y2="{ty:.1f}" stroke="#eeeeee"/>')
        out.append(f'<text x="{f.ml - 6}" y="{ty + 3:.1f}" font-size="10" text-anchor="end" fill="#333333">{v:.2f}</text>')
        v += ystep
    return out


def _score_lines(f: _Frame, series: Series, smooth_s: float | None) -> list[str]:
    raw = " ".join(f"{f.x(t):.1f},{f.y(s):.1f}" for t, s in zip(series.pts, series.scores))
    sm = smooth(series.pts, series.scores, smooth_s or 0.0)
    pts = " ".join(f"{f.x(t):.1f},{f.y(s):.1f}" for t, s in zip(series.pts, sm))
    return [f'<polyline class="raw" points="{raw}" fill="none" stroke="#9ecae1" stroke-width="1"/>',
            f'<polyline class="score" points="{pts}" fill="none" stroke="#1f77b4" stroke-width="2.5"/>']


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
    has_series = series is not None and len(series.pts)
    t_max = max([duration or 0.0, *(float(r["end"]) for r in ranges), *(series.pts.tolist()[-1:] if has_series else [])]) or 1.0
    vals = [] if series is None else series.scores.astype(float).tolist()
    extra = [threshold] if threshold is not None and np.isfinite(threshold) else []
    lo, hi = min([0.0, *vals, *extra]), max([1e-6, *vals, *extra])
    f = _Frame(width, height, t_max, lo, hi + 0.05 * (hi - lo))
    out = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="score over time">',
        f'<rect x="{f.ml}" y="{f.mt}" width="{f.pw}" height="{f.ph}" fill="#ffffff" stroke="#999999"/>',
    ]
    for r in ranges:
        x0, x1 = f.x(r["start"]), f.x(r["end"])
        out.append(f'<rect class="range" x="{x0:.1f}" y="{f.mt}" width="{max(x1 - x0, 1.0):.1f}" height="{f.ph}" fill="#ffd54f" fill-opacity="0.55"/>')
    out += _axes(f)
    if has_series:
        out += _score_lines(f, series, smooth_s)
    if extra:
        ty = f.y(threshold)
        out.append(f'<line class="threshold" x1="{f.ml}" y1="{ty:.1f}" x2="{f.ml + f.pw}" y2="{ty:.1f}" stroke="#d62728" stroke-dasharray="6 4"/>')
    for r in ranges:
        if "peak_score" in r:
            out.append(f'<circle cx="{f.x(r["peak_time"]):.1f}" cy="{f.y(r["peak_score"]):.1f}" r="3.5" fill="#d62728"/>')
    out.append("</svg>")
    return "\n".join(out)


# -- the report ------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; word-break: break-all; }
table { border-collapse: collapse; margin-top: 8px; } td, th { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
.meta td:first-child { color: #666; } .bad { color: #b00020; font-weight: bold; } .ok { color: #1b5e20; }
img.thumb { width: 240px; height: auto; display: block; border: 1px solid #ccc; }
img.thumb.boxed { width: 420px; }
code { font-size: 12px; } .note { color: #666; font-size: 13px; }
"""


def render_report(manifest: dict, plots: dict[str, str]) -> str:
    """report.html for ``manifest``: what was asked and with which model, then per video its plot and ranges."""
    parts = _header(manifest)
    by_video: dict[str, list[dict]] = {}
    for r in manifest["ranges"]:
        by_video.setdefault(r["video_id"], []).append(r)
    sources = {s["video_id"]: s for s in manifest["sources"]}
    for vid, rs in by_video.items():
        parts += _video_section(vid, rs, sources.get(vid, {}), plots.get(vid, ""))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _header(manifest: dict) -> list[str]:
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
    return parts


def _box_note(box) -> str:
    """Where the hit is, under a thumbnail that draws its box (an index with regions)."""
    if not box:
        return ""
    nums = ", ".join(f"{v:.3f}" for v in box)
    return f'<br><span class="note">hit {html.escape(where(box))}: box ({nums}) of the frame, enlarged on the right</span>'


def _video_section(vid: str, ranges: list[dict], src: dict, plot: str) -> list[str]:
    e = html.escape
    status = ('<span class="ok">source verified: SHA-256 matches the index</span>' if src.get("verified")
              else f'<span class="bad">SOURCE NOT VERIFIED: {e(str(src.get("error") or "unknown"))}</span>')
    parts = [f'<section class="video" data-video-id="{e(vid)}"><h2>{e(str(src.get("path") or vid))}</h2>',
             f"<p><code>{e(vid)}</code> {status}</p>", plot,
             "<table><tr><th>#</th><th>start</th><th>end</th><th>duration</th><th>peak</th><th>score</th><th>thumbnail</th><th>clip</th></tr>"]
    for r in sorted(ranges, key=lambda r: r["start"]):
        cls = "thumb boxed" if r.get("box") else "thumb"
        thumb = (f'<img class="{cls}" src="{e(r["thumbnail"]["path"])}" alt="frame at {format_ts(r["peak_time"])}">'
                 if r.get("thumbnail") else "-") + _box_note(r.get("box"))
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
    return parts
