#!/usr/bin/env python
"""Re-running ``vidsearch ingest`` on an archive that is already indexed: the cost of a file that did not change.

    python ops/bench/rescan.py                   # 400 generated videos x 120 s, 10 s chunks: 4,800 chunks
    python ops/bench/rescan.py --videos 1000

Content-hash skipping means such a run decodes, hashes and embeds nothing: it stats each file,
finds it in the catalog (same path, size and mtime), lists its shard directory and writes no
shard. The floor, measured in the same run, is that file-system work alone (walk the archive,
stat each file, list each video's shard directory), without the catalog. The script prints the
no-op re-run's wall time (in-process, imports excluded), its cost per file and its ratio to the
floor. The archive (tiny 64x48 videos, 1 fps) and its first ingest are made once under
``bench-out/`` with the colours-only demo model, so only the bookkeeping is measured.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchlib import best_of  # noqa: E402 - this directory is on sys.path when run as a script


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_archive(root: Path, n: int, seconds: float) -> list[Path]:
    from vidsearch.demo.synth import make_video

    out = []
    for i in range(n):
        p = root / f"cam{i % 8}" / f"v{i:05d}.mp4"
        if not p.exists():
            make_video(p, seconds, [(seconds / 3, seconds / 3 + 10, "red")], size=(64, 48), fps=1, seed=i)
        out.append(p)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=400, help="generated videos (default 400)")
    ap.add_argument("--video-seconds", type=float, default=120.0, help="length of each (default 120)")
    ap.add_argument("--chunk-s", type=float, default=10.0, help="chunk length (default 10: many chunks per video)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the best counts (default 3)")
    ap.add_argument("--work", default=str(REPO / "bench-out"), help="where the archive, model and index go")
    args = ap.parse_args(argv)

    work = Path(args.work) / f"rescan-{args.videos}x{args.video_seconds:g}s"
    os.environ["VIDSEARCH_HOME"] = str(work / "home")  # before vidsearch reads its config
    from vidsearch.models.encoder import Encoder
    from vidsearch.ingest.local import LocalBackend
    from vidsearch.ingest.pipeline import ingest
    from vidsearch.ingest.plan import IngestOptions, scan
    from vidsearch.demo.models import colour_model, install_model
    from vidsearch.models.contract import load_model_info
    from vidsearch.core.plan import Sampling
    from vidsearch.index.shards import IndexStore
    from vidsearch.media.video import file_signature

    log(f"archive: {args.videos} videos x {args.video_seconds:g} s under {work} ...")
    make_archive(work / "archive", args.videos, args.video_seconds)
    models = work / "home" / "models"
    info = load_model_info(models / "demo-colours") if (models / "demo-colours").is_dir() else \
        install_model(colour_model, "demo-colours", models)
    store = IndexStore(work / "index")
    options = IngestOptions(chunk_s=args.chunk_s, sampling=Sampling("fps", 1.0))
    backend = LocalBackend(Encoder(info, providers="cpu"))

    def rerun():
        return ingest([work / "archive"], store, info, backend, options)

    first = rerun()
    if first.chunks_done:
        log(f"first ingest: {first.chunks_done} chunks in {first.wall_s:.1f} s (not part of the benchmark)")
    from vidsearch.index.catalog import Catalog

    with Catalog(store, read_only=True) as cat:
        ids = dict(cat.con.execute("SELECT path, video_id FROM files WHERE status = 'indexed'").fetchall())

    def floor() -> int:
        paths = scan([work / "archive"])[0]
        for p in paths:
            file_signature(p)
            store.video_files(info.model_id, ids[str(p)])
        return len(paths)

    floor_s, n_files = best_of(args.repeat, floor)
    rerun_s, rep = best_of(args.repeat, rerun)
    assert rep.chunks_done == 0 and rep.chunks_skipped == first.chunks_done + first.chunks_skipped, rep
    chunks = rep.chunks_skipped
    print(f"no-op re-run over {n_files} files, {chunks} chunks (best of {args.repeat}, {os.cpu_count()} CPUs)")
    print(f"  floor: walk + stat + list shard dirs   {floor_s * 1000:8.1f} ms  ({floor_s / n_files * 1e6:6.0f} us/file)")
    print(f"  vidsearch ingest (nothing to do)       {rerun_s * 1000:8.1f} ms  ({rerun_s / n_files * 1e6:6.0f} us/file)")
    print(f"  ratio to the floor: {rerun_s / floor_s:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
