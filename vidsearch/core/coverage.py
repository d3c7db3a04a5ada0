"""Pure: how much of a chunk's time span its decoded frames cover (honest coverage of damaged video).

A sampled frame stands for one sampling step of video. A gap between consecutive frames (or
between the chunk's start / end and its first / last frame) longer than ``TOLERANCE`` steps is a
missing stretch: a truncated file (the header says 20 s, the frames end at 10 s) or an
undecodable stretch in the middle.
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import Iterable

#: a gap up to this many sampling steps is normal (frame times jitter around the grid)
TOLERANCE = 1.5


@dataclasses.dataclass(frozen=True)
class Coverage:
    covered_s: float
    missing_s: float
    missing: tuple[tuple[float, float], ...] = ()  # the stretches no frame stands for

    @property
    def partial(self) -> bool:
        return self.missing_s > 0

    def to_marker(self) -> dict:
        """The fields a chunk's ``.done`` marker records."""
        return {"covered_s": self.covered_s, "missing_s": self.missing_s, "missing": [list(m) for m in self.missing]}


def coverage(times: Iterable[float], start: float, end: float, step: float | None) -> Coverage:
    """The coverage of ``[start, end)`` by frames at ``times`` sampled every ``step`` seconds.

    ``step`` None (keyframes: irregular spacing): the median spacing of the frames; with fewer
    than three frames nothing can be told (a chunk inside one long GOP has none).
    """
    ts = sorted(float(t) for t in times)
    span = max(0.0, end - start)
    if step is None and len(ts) < 3:
        return Coverage(round(span, 3), 0.0)
    if not ts:
        return Coverage(0.0, round(span, 3), ((round(start, 3), round(end, 3)),) if span else ())
    if step is None:
        step = statistics.median(b - a for a, b in zip(ts, ts[1:]))
    step = max(step, 1e-6)
    tol = TOLERANCE * step
    gaps: list[tuple[float, float]] = []
    if ts[0] - start > tol:
        gaps.append((start, ts[0]))
    gaps += [(a + step, b) for a, b in zip(ts, ts[1:]) if b - a > tol]
    if end - ts[-1] > tol:
        gaps.append((ts[-1] + step, end))
    missing = tuple((round(a, 3), round(b, 3)) for a, b in gaps if b > a)
    lost = min(span, sum(b - a for a, b in missing))
    return Coverage(round(span - lost, 3), round(lost, 3), missing)


def sampling_step(mode: str, fps: float, frame_interval: float | None) -> float | None:
    """The seconds one sampled frame stands for: the sampling step, or the source's frame interval
    when the source has fewer frames than that (a 0.5 fps camera sampled at 1 fps); None for keyframes."""
    if mode != "fps":
        return None
    return max(1.0 / fps, frame_interval or 0.0)


def chunk_coverage(start: float, end: float, mode: str, fps: float, times: Iterable[float],
                   frame_interval: float | None = None, damaged_packets: int = 0) -> dict:
    """The fields a chunk's ``.done`` marker records about its coverage (any channel): covered and
    missing seconds, the missing stretches, and how many damaged packets were skipped."""
    out = coverage(times, start, end, sampling_step(mode, fps, frame_interval)).to_marker()
    if damaged_packets:
        out["damaged_packets"] = damaged_packets
    return out


def union(stretches: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching ``(start, end)`` stretches merged, in time order."""
    out: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in stretches):
        if out and a <= out[-1][1] + 1e-6:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(round(a, 3), round(b, 3)) for a, b in out]
