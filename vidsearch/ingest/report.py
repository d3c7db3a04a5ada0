"""What an ingest did: chunks done / skipped / failed, frames per channel, seconds of video."""
from __future__ import annotations

import dataclasses

from vidsearch.core.plan import ChunkSpec
from vidsearch.ingest.channels import channel_for, report_keys
from vidsearch.ingest.plan import Failure


def _other_keys() -> dict[str, int]:
    return {k: 0 for k in report_keys() if k != "frames"}


@dataclasses.dataclass
class IngestReport:
    files_seen: int = 0
    videos: int = 0
    chunks_done: int = 0
    chunks_skipped: int = 0
    chunks_failed: int = 0
    frames: int = 0  # frames indexed by the image model (rows in ``frames``, one per sampled frame)
    #: of those, the frames that went through the image encoder (the rest reuse an embedding: motion gating)
    frames_embedded: int = 0
    #: with ``--regions``: rows (a frame's whole-frame and tile crops) and those that went through the
    #: encoder (motion gating decides region by region); left out of the JSON without regions
    region_rows: int = 0
    region_rows_embedded: int = 0
    #: frames of the other channels, by their report key (``ocr_frames``: frames whose on-screen text was read)
    channel_frames: dict[str, int] = dataclasses.field(default_factory=_other_keys)
    seconds_indexed: float = 0.0
    wall_s: float = 0.0
    failures: list[Failure] = dataclasses.field(default_factory=list)
    model_id: str = ""
    providers: list[str] = dataclasses.field(default_factory=list)
    backend: str = "local"
    pending: int = 0
    #: files by outcome once the run is over: every chunk done and whole / some stretch without
    #: frames (damaged or truncated video, failed chunks) / nothing indexed (see ``partial_files``)
    files_indexed: int = 0
    files_partial: int = 0
    files_failed: int = 0
    #: ``{"path", "missing_s", "missing": [[start, end], ...]}`` of each partial file
    partial_files: list[dict] = dataclasses.field(default_factory=list)
    #: ``{"path", "video_id", "chunks"}`` of each content that left the search because its file now
    #: holds other content (re-exported, another drive at the same place): set aside once the new
    #: content is indexed, back if an ingest finds it again (``vidsearch forget --detached`` deletes it)
    replaced: list[dict] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The documented exit status of ``vidsearch ingest``: 0 every file indexed whole (or queued),
        1 nothing indexed and something failed, 3 some file failed or is partial."""
        if self.failures and not (self.chunks_done or self.chunks_skipped or self.pending):
            return 1
        return 3 if (self.files_failed or self.files_partial or self.failures) else 0

    def to_dict(self) -> dict:
        """JSON-ready; each channel's frames under its own key, after ``frames``."""
        d = dataclasses.asdict(self)
        d["failures"] = [dataclasses.asdict(f) for f in self.failures]
        extra = d.pop("channel_frames")
        if not self.region_rows:
            del d["region_rows"], d["region_rows_embedded"]
        out: dict = {}
        for k, v in d.items():
            out[k] = v
            if k == "frames":
                out.update(extra)
        return out


def count_files(report: IngestReport, states: dict[str, tuple[str, list]], failed_paths: set[str]) -> None:
    """Settle the file counts from :meth:`Catalog.file_gaps` and the files that failed before
    planning (``failed_paths``)."""
    from vidsearch.core.coverage import union

    report.files_failed = len(failed_paths - states.keys())
    report.partial_files = []
    for path, (status, gaps) in sorted(states.items()):
        if status == "failed":
            report.files_failed += 1
        elif status == "partial" or gaps:
            stretches = union(gaps)
            report.partial_files.append({"path": path, "missing_s": round(sum(b - a for a, b in stretches), 3),
                                         "missing": [list(g) for g in stretches]})
        elif status == "indexed":
            report.files_indexed += 1
    report.files_partial = len(report.partial_files)


def count_chunk(report: IngestReport, spec: ChunkSpec, marker: dict) -> None:
    """Add a finished chunk to the report: its frames under its channel's key; the seconds of
    video indexed count image chunks only."""
    report.chunks_done += 1
    n = int(marker.get("frames", 0))
    key = channel_for(spec.model_id).report_key
    if key == "frames":
        report.frames += n
        embedded = int(marker.get("embedded", n))
        report.frames_embedded += embedded
        if marker.get("regions"):
            rows = int(marker.get("rows", n))
            report.region_rows += rows
            report.region_rows_embedded += int(marker.get("embedded_rows", embedded * rows // max(n, 1)))
        report.seconds_indexed += spec.end - spec.start
    else:
        report.channel_frames[key] = report.channel_frames.get(key, 0) + n
