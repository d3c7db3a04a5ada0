#!/usr/bin/env python
"""Warm query latency of ``vidsearch serve`` at a million frames, against the float16 scan floor.

    python ops/bench/serve.py                      # 1M frames (the index of ops/bench/query.py, reused)
    python ops/bench/serve.py --frames 100000 --repeat 10 --json out.json

Builds or reuses the bench index of ``ops/bench/query.py`` (random unit vectors, a 512-dim
random model, a few planted segments), then in the same run:

* ``float16 scan floor``: scoring every row of the search matrix once (``FrameIndex.scores``,
  the float16 kernel every query pays) in this process, median of ``--repeat``;
* ``serve, first query``: ``vidsearch serve`` started as a process, its first ``POST /api/query``
  (model load, matrix open): what every CLI query pays;
* ``serve, warm query``: the same request again (``--repeat`` times, median, each right after a
  floor run so that other load on the machine weighs on both alike), measured by the client
  over HTTP: text encoding, scoring, ranges, per-video timelines, JSON.

The issue's target: the warm API query within 2x of the floor.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def query_bench():
    spec = importlib.util.spec_from_file_location("bench_query", Path(__file__).with_name("query.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Floor:
    """Scoring every row of the (memory-mapped, float16) search matrix once: the floor of any query."""

    def __init__(self, meta: dict):
        import numpy as np

        from vidsearch.index.shards import IndexStore
        from vidsearch.query.engine import load_frame_index

        self.index = load_frame_index(IndexStore(meta["index"]), meta["model_id"])
        q = np.random.default_rng(1).standard_normal(self.index.emb.shape[1]).astype(np.float32)
        self.q = q / np.linalg.norm(q)
        self.index.scores(self.q)  # page the matrix in, as the server's first query does

    def __call__(self) -> float:
        t = time.perf_counter()
        self.index.scores(self.q)
        return time.perf_counter() - t


def post(url: str, body: dict) -> tuple[float, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        data = r.read()
    return time.perf_counter() - t, json.loads(data)


def bench(meta: dict, query: str, model: str, repeat: int, top: int) -> dict:
    """Start the server, time its first query, then warm queries and the floor, interleaved (so that
    other load on the machine weighs on both alike)."""
    env = {**os.environ, "VIDSEARCH_HOME": meta["home"], "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "vidsearch", "serve", "--index", meta["index"], "--port", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        m = re.search(r"(http://\S+)", proc.stdout.readline())
        if not m:
            raise SystemExit("serve printed no URL")
        url = m.group(1) + "api/query"
        body = {"prompts": [query], "top": top, "model": model}
        first, out = post(url, body)
        floor = Floor(meta)
        floors, warm, server = [], [], []
        for _ in range(repeat):
            floors.append(floor())
            t, res = post(url, body)
            warm.append(t)
            server.append(res["api_seconds"])
        return {"first": first, "warm": warm, "server": server, "floor": floors, "rows": len(floor.index),
                "dtype": str(floor.index.emb.dtype), "ranges": len(out["ranges"]), "timelines": len(out["timelines"])}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--videos", type=int, default=280)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--chunk-s", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per measurement (median reported)")
    ap.add_argument("--top", type=int, default=50)
    ap.add_argument("--work", default=str(REPO / "bench-out"))
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)

    qb = query_bench()
    work = Path(args.work) / f"query-{args.frames}-{args.videos}-{args.dim}"
    log(f"building / reusing the bench index in {work} ...")
    meta = qb.build_index(work, args)
    os.environ["VIDSEARCH_HOME"] = meta["home"]
    from vidsearch.index.matrix import refresh
    from vidsearch.index.shards import IndexStore

    refresh(IndexStore(meta["index"]), meta["model_id"])  # the matrix exists before anything is timed
    log("serve ...")
    res = bench(meta, qb.QUERY, qb.MODEL_NAME, args.repeat, args.top)
    f, w, sv = (statistics.median(res[k]) for k in ("floor", "warm", "server"))
    print(f"{res['rows']:,} frames ({res['dtype']}, dim {args.dim}) on {qb.machine()}")
    print(f"float16 scan floor          {f * 1000:8.1f} ms")
    print(f"serve, first query          {res['first'] * 1000:8.1f} ms  (model load, matrix open)")
    print(f"serve, warm query (HTTP)    {w * 1000:8.1f} ms  = {w / f:.2f}x the floor "
          f"(server side {sv * 1000:.1f} ms; {res['ranges']} ranges, {res['timelines']} timelines; target: within 2x)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({**res, "ratio": w / f}, indent=1))
    return 0 if w <= 2 * f else 1

if __name__ == "__main__":
    sys.exit(main())
