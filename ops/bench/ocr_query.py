#!/usr/bin/env python
"""``query --text-in-frame`` over many hours of on-screen text, without running OCR.

    python ops/bench/ocr_query.py                  # 20 videos x 1 h, read every 2 s: 36,000 frames, 1,200 shards
    python ops/bench/ocr_query.py --videos 50

The OCR shards are written directly, as the OCR channel would (``vidsearch.ocr.channel``), with
a clock overlay on every frame (a new distinct line each time, the worst case for the number of
distinct lines) and a sign in 30% of the frames. Then it times, in the same run:

* ``baseline``: what a query must read, straight from the shards: every shard's lines (DuckDB
  ``read_parquet`` over all of them, all threads) plus every ``.done`` marker for the frames read;
* ``cache``: the same from the per-video copy (``vidsearch.ocr.textcache``, already fresh);
* the whole query, by letters and with meaning (the sentence model, when installed).

Prints each and the ratio of the reads. Best of ``--repeat`` runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchlib import best_of  # noqa: E402 - this directory is on sys.path when run as a script


@dataclasses.dataclass
class Line:
    text: str
    confidence: float
    box: tuple


def build(store, videos: int, hours: float, chunk_s: float) -> None:
    from vidsearch.ocr.channel import OCR_CHANNEL, TEXT_DIM, _rows_table
    from vidsearch.core.plan import ChunkSpec
    from vidsearch.index.catalog import Catalog
    from vidsearch.ingest.channels import sync_catalog

    rng = np.random.default_rng(0)
    signs = ["EMERGENCY EXIT", "FRESH BREAD", "NO PARKING", "PHARMACY"]
    with Catalog(store) as cat:
        for v in range(videos):
            vid, path = f"{v:064x}", f"/archive/cam{v:03d}.mp4"
            cat.upsert_video(vid, {"path": path, "duration": hours * 3600, "width": 1920, "height": 1080}, 1)
            for start in np.arange(0, hours * 3600, chunk_s):
                spec = ChunkSpec(vid, path, float(start), float(start + chunk_s), "fps=0.5", OCR_CHANNEL)
                pts = np.arange(spec.start, spec.end, 2.0)
                rows = []
                for t in pts:
                    s = int(t)
                    rows.append((float(t), Line(f"CAM{v} 2026-11-02 {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}",
                                                0.9, (0.01, 0.01, 0.3, 0.05))))
                    if rng.random() < 0.3:
                        rows.append((float(t), Line(str(rng.choice(signs)), 0.95, (0.4, 0.1, 0.6, 0.2))))
                distinct = sorted({line.text for _, line in rows})
                vecs = rng.standard_normal((len(distinct), TEXT_DIM)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                store.write_table_shard(spec, _rows_table(spec, rows, dict(zip(distinct, vecs))),
                                        extra={"frames": len(pts), "sampled": pts.tolist()})
        sync_catalog(cat)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=20, help="videos (default 20)")
    ap.add_argument("--hours", type=float, default=1.0, help="hours each (default 1)")
    ap.add_argument("--chunk-s", type=float, default=60.0, help="chunk length (default 60, as ingest)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the best counts (default 3)")
    ap.add_argument("--work", default=str(REPO / "bench-out"), help="where the index goes (reused)")
    args = ap.parse_args(argv)

    work = Path(args.work) / f"ocr-query-{args.videos}x{args.hours:g}h"
    os.environ["VIDSEARCH_HOME"] = str(work / "home")
    import duckdb

    from vidsearch.ocr import textcache
    from vidsearch.ocr.channel import OCR_CHANNEL
    from vidsearch.query.text import _read_lines, text_ranges
    from vidsearch.ocr.sentence import available
    from vidsearch.index.shards import IndexStore

    store = IndexStore(work / "index")
    if not store.catalog_path.exists():
        print(f"writing {args.videos} x {args.hours:g} h of OCR shards under {work} ...", file=sys.stderr)
        build(store, args.videos, args.hours, args.chunk_s)
    t_build, files = best_of(1, lambda: textcache.refresh(store, OCR_CHANNEL))
    shards = sorted(str(p) for p in (store.shards_root).glob("ocr*/*/*/*.parquet"))

    def baseline():
        sampled = {}
        for kind, rec in store.iter_records(OCR_CHANNEL):
            if kind == "done":
                sampled.setdefault(rec["video_id"], []).extend(rec.get("sampled") or [])
        con = duckdb.connect()
        try:
            src = "read_parquet([" + ", ".join(f"'{f}'" for f in shards) + "])"
            rel = con.sql(f"SELECT video_id, pts, text, confidence, x0, y0, x1, y1, text_embedding FROM {src}")
            table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        finally:
            con.close()
        return table.num_rows, sum(len(v) for v in sampled.values())

    def cached():
        lines, sampled = _read_lines(textcache.refresh(store, OCR_CHANNEL), with_vectors=True)
        return len(lines.text_code), sum(len(v) for v in sampled.values())

    t_base, (rows, frames) = best_of(args.repeat, baseline)
    t_cache, got = best_of(args.repeat, cached)
    assert got == (rows, frames), (got, rows, frames)
    t_letters, res = best_of(args.repeat, lambda: text_ranges(store, "EMERGENCY EXIT", semantic=False))
    print(f"{len(files)} videos, {len(shards)} shards, {frames} frames read, {rows} lines (best of {args.repeat}, {os.cpu_count()} CPUs)")
    print(f"  first build of the per-video copy       {t_build * 1000:8.0f} ms (once; ingest --ocr does it)")
    print(f"  read lines + frames: shards (baseline)  {t_base * 1000:8.0f} ms")
    print(f"  read lines + frames: per-video copy     {t_cache * 1000:8.0f} ms   {t_base / t_cache:.1f}x faster")
    print(f"  query by letters                        {t_letters * 1000:8.0f} ms   ({len(res.ranges)} ranges)")
    if available():
        t_sem, res = best_of(args.repeat, lambda: text_ranges(store, "exit sign"))
        print(f"  query with meaning                      {t_sem * 1000:8.0f} ms")
    print(json.dumps({"videos": len(files), "shards": len(shards), "lines": rows, "baseline_read_s": round(t_base, 4),
                      "cache_read_s": round(t_cache, 4), "letters_s": round(t_letters, 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
