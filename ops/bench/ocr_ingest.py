#!/usr/bin/env python
"""Speed of the OCR channel at ingest (needs the ocr extra).

    python ops/bench/ocr_ingest.py                      # 60 s of 1280x720, text + scene cuts
    python ops/bench/ocr_ingest.py --size 1920x1080 --duration 120 --repeat 3 --json out.json

Writes a generated video with text panels and hard cuts, then runs the OCR channel's chunks
(:func:`vidsearch.ocr.channel.ocr_chunk`) over it two ways, in this run:

- baseline: the 2 s grid only (decode at 0.5 fps, no cut detection);
- default: the grid plus scene cuts (decode at 2 fps, compare thumbnails).

Prints, for each: frames read, wall seconds, seconds of video per wall second (x realtime), and
the default's cost relative to the baseline. Engine start-up and first-shape warm-up are
excluded (a 16 s warm-up run first).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vidsearch.ocr.channel import ocr_chunk, plan_ocr, shared_embedder, shared_reader  # noqa: E402
from vidsearch.index.shards import IndexStore  # noqa: E402
from vidsearch.demo.synth_text import make_text_video  # noqa: E402

TEXTS = ["EMERGENCY EXIT", "FRESH BREAD", "VAN 42 DELIVERY", "NO PARKING"]
COLOURS = ["red", "blue", "green", "yellow"]


def make_video(path: Path, duration: float, size: tuple[int, int]) -> Path:
    segs, scenes = [], []
    t, i = 1.0, 0
    while t < duration - 4:
        segs.append((t, t + 5, TEXTS[i % len(TEXTS)]))
        scenes.append((t + 1.3, t + 4.3, COLOURS[i % len(COLOURS)]))  # cuts off the 2 s grid
        t += 8
        i += 1
    return make_text_video(path, segs, duration=duration, size=size, fps=25, scenes=scenes)


def run(path: Path, duration: float, chunk_s: float, cuts: bool) -> dict:
    with tempfile.TemporaryDirectory() as d:
        store = IndexStore(d)
        specs = plan_ocr("0" * 64, str(path), duration, chunk_s)
        t0 = time.perf_counter()
        markers = [ocr_chunk(s, store, cuts=cuts) for s in specs]
        wall = time.perf_counter() - t0
    return {
        "frames": sum(m["frames"] for m in markers), "cuts": sum(m["cuts"] for m in markers),
        "lines": sum(m["lines"] for m in markers), "wall_s": round(wall, 3),
        "x_realtime": round(duration / wall, 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--chunk", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=1, help="Alternate the two modes this many times; keep each one's fastest run.")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        video = make_video(Path(d) / "bench.mp4", args.duration, (w, h))
        shared_reader().load()
        shared_embedder().load()
        run(video, min(16.0, args.duration), args.chunk, cuts=True)  # warm-up: ONNX Runtime's first shapes are slow
        runs = {False: [], True: []}
        for _ in range(max(1, args.repeat)):
            for cuts in (False, True):
                runs[cuts].append(run(video, args.duration, args.chunk, cuts=cuts))
        base, default = (min(runs[c], key=lambda r: r["wall_s"]) for c in (False, True))
    out = {"size": args.size, "duration_s": args.duration, "baseline_grid_only": base, "default_grid_and_cuts": default,
           "default_wall_vs_baseline": round(default["wall_s"] / base["wall_s"], 2)}
    for name, r in (("grid only (baseline)", base), ("grid + cuts (default)", default)):
        print(f"{name:22s} {r['frames']:4d} frames read ({r['cuts']} at cuts), {r['lines']} lines, "
              f"{r['wall_s']:.2f} s, {r['x_realtime']:.1f}x realtime")
    print(f"default / baseline wall time: {out['default_wall_vs_baseline']:.2f}x")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
