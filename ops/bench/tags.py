#!/usr/bin/env python
"""Tagging cost at a million frames: `vidsearch tags build` time and storage.

    python ops/bench/tags.py                      # 1M frames: 280 one-hour videos at 1 fps, dim 512
    python ops/bench/tags.py --frames 100000      # smaller and quicker
    python ops/bench/tags.py --json out.json

Builds (once, under ``bench-out/tags-<frames>/``) an index of image shards with the real writers
(``IndexStore.write_shard`` per 60 s chunk) whose frames have structure: the built-in vocabulary
gets random unit text vectors (what a CLIP model's would be, cached in the index as ``text.npy``),
every video has a few constant scene tags and a few tags that come and go in segments, and each
frame is ``unit(sum of its present tags' vectors + noise)`` (present tags score ~0.2-0.3, the others
~N(0, 0.045), as CLIP's cosines do). Then, through :func:`vidsearch.retro.tags.build`:

* **tag**: every chunk: read its image shard, score it against the vocabulary (one matmul),
  write its candidates (Parquet) and marker;
* **calibrate + ranges**: thresholds from 20,000 frames of the search matrix, every candidate
  read back, ranges written (``tags/ranges.parquet``);
* **re-run**: nothing changed: planning only.

The search matrix is built first and timed apart (an ingest leaves it up to date).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODEL_ID = "bench-512@tags"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def video_frames(rng, n: int, text: np.ndarray) -> np.ndarray:
    """One video's frames: 3 constant scene tags, 4 tags present in a few segments each, noise."""
    k, dim = text.shape
    tags = rng.choice(k, size=7, replace=False)
    mix = np.zeros((n, dim), np.float32)
    for t in tags[:3]:
        mix += rng.uniform(0.25, 0.35) * text[t]
    for t in tags[3:]:
        for _ in range(int(rng.integers(1, 6))):
            s = int(rng.integers(0, n))
            mix[s : s + int(rng.integers(5, 300))] += 0.35 * text[t]
    return unit(mix + rng.standard_normal((n, dim), dtype=np.float32) * (0.8 / np.sqrt(dim)))


def build_index(work: Path, args):
    from vidsearch.core.plan import ChunkSpec, Sampling, plan_chunks
    from vidsearch.index.catalog import Catalog
    from vidsearch.index.shards import IndexStore
    from vidsearch.retro import tagchannel as tc

    store = IndexStore(work / "index")
    want = {"frames": args.frames, "videos": args.videos, "dim": args.dim, "chunk_s": args.chunk_s, "format": 1}
    stamp = work / "index.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return store
    if work.exists():
        shutil.rmtree(work)
    vocab = tc.Vocabulary.load()
    rng = np.random.default_rng(0)
    text = unit(rng.standard_normal((len(vocab.tags), args.dim), dtype=np.float32))
    tags_id = tc.channel_id(MODEL_ID, vocab)
    tc.write_context(store, tags_id, MODEL_ID, vocab)
    np.save(tc.context_dir(store, tags_id) / "text.npy", text)  # the model's text vectors, cached
    per_video = args.frames // args.videos
    t0 = time.perf_counter()
    with Catalog(store) as cat:
        cat.register_model(MODEL_ID, "bench-512", args.dim, {})
        for v in range(args.videos):
            cat.upsert_video(f"{v:064x}", {"path": f"/bench/cam{v % 20:02d}/{v:03d}.mp4", "duration": float(per_video),
                                           "width": 1920, "height": 1080, "fps": 25.0, "codec": "h264",
                                           "creation_time": f"2026-11-{1 + v // 24 % 28:02d}T{v % 24:02d}:00:00Z"}, 1)
    for v in range(args.videos):
        emb = video_frames(rng, per_video, text)
        for s, e in plan_chunks(float(per_video), args.chunk_s):
            spec = ChunkSpec(f"{v:064x}", f"/bench/cam{v % 20:02d}/{v:03d}.mp4", s, e, Sampling("fps", 1.0).key,
                             MODEL_ID, args.chunk_s)
            rows = np.arange(int(s), int(e))
            store.write_shard(spec, rows.astype(np.float64), emb[rows])
        if v % 20 == 19:
            log(f"  wrote {v + 1}/{args.videos} videos ({time.perf_counter() - t0:.0f} s)")
    stamp.write_text(json.dumps(want))
    return store


def du(path: Path, pattern: str = "**/*") -> tuple[int, int]:
    files = [p for p in path.glob(pattern) if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--videos", type=int, default=280)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--chunk-s", type=float, default=60.0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    work = args.work or REPO / "bench-out" / f"tags-{args.frames}"
    from vidsearch.index import matrix
    from vidsearch.index.shards import model_slug
    from vidsearch.retro import tagchannel as tc
    from vidsearch.retro.tags import build

    store = build_index(work, args)
    for d in (store.root / "tags").glob("*"):  # start every run untagged
        if d.is_dir():
            for f in d.glob("calibration.json"):
                f.unlink()
    (store.root / "tags" / "ranges.parquet").unlink(missing_ok=True)
    vocab = tc.Vocabulary.load()
    tags_id = tc.channel_id(MODEL_ID, vocab)
    shutil.rmtree(store.shards_root / model_slug(tags_id), ignore_errors=True)
    t0 = time.perf_counter()
    matrix.refresh(store, MODEL_ID)
    matrix_s = time.perf_counter() - t0
    encoder = types.SimpleNamespace(info=types.SimpleNamespace(model_id=MODEL_ID))  # text vectors are cached
    t0 = time.perf_counter()
    first = build(store, encoder, vocab)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal = tc.refresh_ranges(store, tags_id)
    ranges_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = build(store, encoder, vocab)
    again_s = time.perf_counter() - t0
    cand_bytes, cand_files = du(store.shards_root / model_slug(tags_id), "*/*/*.parquet")
    img_bytes, _ = du(store.shards_root / model_slug(MODEL_ID), "*/*/*.parquet")
    ranges_bytes = (store.root / tc.RANGES).stat().st_size
    import pyarrow.parquet as pq

    cand_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in store.done_shards(tags_id))
    frames = first["frames"]
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "frames": frames, "tags": first["tags"], "chunks": first["chunks_tagged"],
        "search_matrix_build_s": round(matrix_s, 2),
        "tags_build_s": round(first_s, 2), "tag_only_s": round(first_s - cal["seconds"], 2),
        "calibrate_and_ranges_s": round(ranges_s, 2), "rerun_nothing_changed_s": round(again_s, 3),
        "rerun_tagged": again["chunks_tagged"], "candidate_rows": cand_rows,
        "candidates_per_frame": round(cand_rows / max(1, frames), 2),
        "candidate_shards_mb": round(cand_bytes / 2**20, 1), "candidate_bytes_per_frame": round(cand_bytes / max(1, frames), 1),
        "candidate_files": cand_files, "ranges": cal["ranges"], "ranges_mb": round(ranges_bytes / 2**20, 2),
        "image_shards_mb": round(img_bytes / 2**20, 1),
        "frames_per_s": round(frames / max(1e-9, first_s), 0),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
