#!/usr/bin/env python
"""What ``ingest --regions N`` costs: ingest time and index size per grid, and query latency at scale.

    python ops/bench/regions.py                           # ingest 1, 2, 3; query at 1M frames, grids 1 and 2
    python ops/bench/regions.py --query-frames 200000 --query-grids 1,2,3
    python ops/bench/regions.py --json out.json

**Ingest** (real files, real index): ``--videos`` wide 640x360 videos of ``--seconds`` each, with
small coloured subjects, ingested at 1 fps with the real pipeline (``LocalBackend``) for every grid
of ``--grids``, with a 512-dim ``tiny_random_model`` at 224 px input. Reported: wall time, rows
embedded, Parquet shard bytes and search-matrix bytes. The tiny model's encoder is nearly free, so
the wall time is decoding, tiling, writing and the encoder's fixed cost; a real CLIP image tower
costs about the same per embedding whatever the grid, so its share grows with the rows
(``N*N+1`` per frame): multiply ``ops/bench/encoder.py``'s per-image time by the rows.

**Query** (synthetic, in memory-mapped float16 like the search matrix): ``--query-frames`` frames
in one-hour videos at 1 fps, dim 512, with ``N*N+1`` rows per frame, scored by
:meth:`FrameIndex.scores` (float16 matmul + best of each frame's regions) and cut into ranges per
video as the query engine does. Reported: scoring, ranges and the per-query total, best of
``--repeat``; and the one-off per-process cost of making the row index per frame (``with_regions``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
for p in (REPO, Path(__file__).resolve().parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from benchlib import best_of  # noqa: E402

FRAMES_PER_VIDEO = 3600  # one hour at 1 fps


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def make_videos(root: Path, n: int, seconds: float) -> list[Path]:
    from vidsearch.demo.synth import Spot, make_spot_video

    out = []
    for i in range(n):
        spots = [Spot(5.0 + 20 * k, 15.0 + 20 * k, c, centre=(0.2 + 0.3 * k, 0.7), area=0.02)
                 for k, c in enumerate(["red", "blue", "green"]) if 15 + 20 * k <= seconds]
        out.append(make_spot_video(root / f"cam{i}.mp4", seconds, spots, size=(640, 360), seed=i))
    return out


def bench_ingest(args, work: Path) -> list[dict]:
    from vidsearch.core.plan import Sampling
    from vidsearch.demo.models import install_model, tiny_random_model
    from vidsearch.index import matrix
    from vidsearch.index.shards import IndexStore
    from vidsearch.ingest.local import LocalBackend
    from vidsearch.ingest.pipeline import ingest
    from vidsearch.ingest.plan import IngestOptions
    from vidsearch.models.encoder import Encoder

    videos = make_videos(work / "archive", args.videos, args.seconds)
    info = install_model(lambda d, name: tiny_random_model(d, dim=512, image_size=224, name=name), "bench-512-224",
                         work / "models")
    encoder = Encoder.load(str(info.path))
    out = []
    for grid in args.grids:
        store = IndexStore(work / f"index-r{grid}")
        opts = IngestOptions(sampling=Sampling("fps", 1.0, grid), batch_size=32)
        t0 = time.perf_counter()
        rep = ingest([work / "archive"], store, info, LocalBackend(encoder, 32), opts)
        wall = time.perf_counter() - t0
        matrix.refresh(store, info.model_id)
        row = {"grid": grid, "frames": rep.frames, "rows": rep.frames * (grid * grid + 1 if grid > 1 else 1),
               "video_s": rep.seconds_indexed, "wall_s": round(wall, 2),
               "shard_mb": round(dir_bytes(store.shards_root) / 2**20, 2),
               "matrix_mb": round(dir_bytes(store.root / "matrix") / 2**20, 2)}
        log(f"ingest grid {grid}: {row}")
        out.append(row)
    return out


def synthetic_index(frames: int, grid: int, dim: int, work: Path):
    """A memory-mapped float16 frame index of ``frames`` frames with ``grid``'s rows per frame."""
    from vidsearch.core.regions import count, layout
    from vidsearch.index.frames import FrameIndex, with_regions

    per = count(grid)
    rows = frames * per
    path = work / f"emb-{frames}-{grid}.f16"
    rng = np.random.default_rng(grid)
    emb = np.memmap(path, dtype=np.float16, mode="w+", shape=(rows, dim))
    step = 65536
    for i in range(0, rows, step):
        block = rng.standard_normal((min(step, rows - i), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        emb[i : i + len(block)] = block
    emb.flush()
    emb = np.memmap(path, dtype=np.float16, mode="r", shape=(rows, dim))
    n_videos = -(-frames // FRAMES_PER_VIDEO)
    codes = np.repeat(np.arange(n_videos, dtype=np.int32), FRAMES_PER_VIDEO)[:frames].repeat(per)
    pts = np.tile(np.arange(FRAMES_PER_VIDEO, dtype=np.float64), n_videos)[:frames].repeat(per)
    video_rows = {c: np.arange(c * FRAMES_PER_VIDEO * per, min(frames, (c + 1) * FRAMES_PER_VIDEO) * per) for c in range(n_videos)}
    base = FrameIndex("bench", [f"v{c}" for c in range(n_videos)], codes, pts, emb, video_rows)
    region = np.tile(np.arange(per, dtype=np.int16), frames) if per > 1 else None
    t0 = time.perf_counter()
    index = with_regions(base, region, layout(grid))
    return index, time.perf_counter() - t0, path


def bench_query(args, work: Path) -> list[dict]:
    from vidsearch.core.ranges import adaptive_threshold, rank, video_ranges

    q = np.random.default_rng(7).standard_normal(args.dim).astype(np.float32)
    q /= np.linalg.norm(q)
    out = []
    for grid in args.query_grids:
        index, prep_s, path = synthetic_index(args.query_frames, grid, args.dim, work)
        groups = index.rows_by_video()

        def ranges(scores):
            thr = adaptive_threshold(scores)
            found = [r for c, g in groups.items() if scores[g].max() >= thr
                     for r in video_ranges(index.videos[c], index.pts[g], scores[g], thr)]
            return rank(found, 50)

        index.scores(q)  # warm the page cache and the ONNX session
        score_s, scores = best_of(args.repeat, lambda: index.scores(q))
        range_s, top = best_of(args.repeat, lambda: ranges(scores))
        box_s, _ = best_of(args.repeat, lambda: [index.peak_box(0, q) for _ in top])
        row = {"grid": grid, "frames": len(index), "rows": int(index.emb.shape[0]), "dim": args.dim,
               "matrix_gib": round(index.emb.nbytes / 2**30, 2), "score_ms": round(score_s * 1e3, 1),
               "ranges_ms": round(range_s * 1e3, 1), "boxes_ms": round(box_s * 1e3, 2),
               "query_ms": round((score_s + range_s + box_s) * 1e3, 1), "per_frame_index_s": round(prep_s, 3)}
        log(f"query grid {grid}: {row}")
        out.append(row)
        del index, scores
        path.unlink()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--grids", type=ints, default=[1, 2, 3])
    ap.add_argument("--query-frames", type=int, default=1_000_000)
    ap.add_argument("--query-grids", type=ints, default=[1, 2])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-query", action="store_true")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("VIDSEARCH_HOME", tempfile.mkdtemp(prefix="vidsearch-bench-home-"))
    with tempfile.TemporaryDirectory(prefix="vidsearch-bench-regions-", dir=args.work) as tmp:
        work = Path(tmp)
        result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
                  "ingest": [] if args.skip_ingest else bench_ingest(args, work),
                  "query": [] if args.skip_query else bench_query(args, work)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
