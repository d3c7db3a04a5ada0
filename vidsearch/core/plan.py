"""Pure planning: sampling policies, chunk specs and their stable ids.

A chunk is ``[start, end)`` of one video, sampled one way, embedded by one model. Its id is a
hash of exactly those things, so a redelivered or re-run chunk lands on the same shard.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

from vidsearch.core.regions import check_grid

DEFAULT_CHUNK_S = 60.0
#: the file names a directory walk picks up (any case); a file named on the command line is tried whatever its name
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .avi .webm .mpg .mpeg .vob .ts .mts .m2ts .m2t .mxf .wmv .asf .flv .f4v .3gp .3g2 .ogv "
    ".mod .tod .divx .rm .rmvb .dav .h264 .264 .hevc .h265 .265 .mjpeg .mjpg".split()
)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """``mode="fps"`` samples ``fps`` frames per second; ``mode="keyframes"`` decodes keyframes only.

    ``regions``: the image channel's region grid (:mod:`vidsearch.core.regions`); part of the key
    (``fps=1+regions=3``) only when it is not 1, so whole-frame chunks keep their ids.
    """

    mode: str = "fps"
    fps: float = 1.0
    regions: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("fps", "keyframes"):
            raise ValueError(f"unknown sampling mode {self.mode!r}")
        if self.mode == "fps" and not (0 < self.fps <= 120):
            raise ValueError("fps must be in (0, 120]")
        check_grid(self.regions)

    @property
    def key(self) -> str:
        key = "keyframes" if self.mode == "keyframes" else f"fps={self.fps:g}"
        return key if self.regions == 1 else f"{key}+regions={self.regions}"

    @classmethod
    def parse(cls, key: str) -> "Sampling":
        key, _, extra = key.partition("+")
        regions = 1
        if extra:
            if not extra.startswith("regions=") or not extra[8:].isdigit():
                raise ValueError(f"bad sampling key {key}+{extra!r}")
            regions = int(extra[8:])
        if key == "keyframes":
            return cls("keyframes", regions=regions)
        if key.startswith("fps="):
            return cls("fps", float(key[4:]), regions)
        raise ValueError(f"bad sampling key {key!r}")

    def timestamps(self, start: float, end: float) -> list[float]:
        """The sample times in ``[start, end)`` for fps mode: a grid anchored at 0, not at ``start``."""
        step = 1.0 / self.fps
        first = math.ceil(start / step - 1e-9)
        out = []
        i = first
        while i * step < end - 1e-9:
            out.append(round(i * step, 6))
            i += 1
        return out


@dataclasses.dataclass(frozen=True)
class ChunkSpec:
    """Everything a worker needs to embed one chunk. JSON-serialisable (Celery tasks carry it)."""

    video_id: str  # SHA-256 of the file's content
    path: str
    start: float
    end: float
    sampling: str  # Sampling.key
    model_id: str
    chunk_s: float = DEFAULT_CHUNK_S
    #: motion gating of the image channel: "auto" (frames whose picture did not change reuse the
    #: last embedding, :mod:`vidsearch.core.motion`) or "off" (every sampled frame is embedded; a
    #: spec that does not say, e.g. from an older submitter). Not part of the chunk id: gating
    #: changes how the rows are computed, not which rows a chunk has (docs/motion.md).
    motion: str = "off"
    #: the video's display turn in degrees (a phone's portrait video: 90 or 270). A chunk of a
    #: turned video is done only once its frames were taken upright (its marker says so): one
    #: written by a version that took them on their side is redone. Not part of the chunk id.
    rotation: int = 0
    #: the file's size in bytes when the chunk was planned: a chunk whose file has another size
    #: when it runs (still being written, replaced) fails rather than index other content under
    #: this video's id. Not part of the chunk id; None: not recorded (an older submitter).
    size: int | None = None

    @property
    def chunk_id(self) -> str:
        return chunk_id(self.video_id, self.model_id, self.sampling, self.start, self.end)

    @property
    def name(self) -> str:
        """Shard file stem: sortable by time, unique per sampling."""
        samp = self.sampling.replace("=", "")
        return f"{int(round(self.start * 1000)):010d}-{int(round(self.end * 1000)):010d}-{samp}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ChunkSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


def chunk_id(video_id: str, model_id: str, sampling: str, start: float, end: float) -> str:
    key = f"{video_id}|{model_id}|{sampling}|{start:.3f}|{end:.3f}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def plan_chunks(duration: float, chunk_s: float = DEFAULT_CHUNK_S) -> list[tuple[float, float]]:
    """Split ``[0, duration)`` into chunks of ``chunk_s``; a tail shorter than a quarter chunk joins the previous one."""
    if chunk_s <= 0:
        raise ValueError("chunk length must be positive")
    if duration <= 0:
        return []
    bounds = []
    start = 0.0
    while start < duration - 1e-9:
        end = min(start + chunk_s, duration)
        bounds.append((round(start, 3), round(end, 3)))
        start = end
    if len(bounds) > 1 and (bounds[-1][1] - bounds[-1][0]) < chunk_s / 4:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def plan_video(
    video_id: str, path: str, duration: float, model_id: str, sampling: Sampling, chunk_s: float = DEFAULT_CHUNK_S
) -> list[ChunkSpec]:
    return [
        ChunkSpec(video_id=video_id, path=path, start=s, end=e, sampling=sampling.key, model_id=model_id, chunk_s=chunk_s)
        for s, e in plan_chunks(duration, chunk_s)
    ]


def is_video_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in VIDEO_EXTENSIONS and not name.startswith(".")
