#!/usr/bin/env python
"""Query latency at a million frames: vidsearch vs the memory-bandwidth bound vs DuckDB.

    python ops/bench/query.py                      # 1M frames: 280 one-hour videos at 1 fps, dim 512
    python ops/bench/query.py --frames 100000      # smaller and quicker
    python ops/bench/query.py --json out.json

Builds (once, under ``bench-out/query-<frames>/``) a real index of random unit vectors with the
real writers: ``IndexStore.write_shard`` per 60 s chunk, ``Catalog.sync``, and a 512-dim
``tiny_random_model`` as the query model. A few segments are planted close to the query's text
embedding, so the top ranges have a known answer (their recall is printed).

Each measurement runs in its own process so that its peak RSS (VmHWM) is its own:

* ``numpy bound``: ``emb @ q`` over the same rows as a float32 matrix in RAM: the
  memory-bandwidth bound the issue measures against.
* ``vidsearch query``: the CLI command (``vidsearch --index IDX query TEXT --top 50 --json``)
  called in-process through click, i.e. without process start: model pick (catalog), text
  encoder, search-matrix freshness check, scoring the float16 matrix, per-video ranges.
* ``duckdb``: ``array_cosine_similarity`` over the ``frames_<model>`` view, ``ORDER BY ... LIMIT 50``
  (top frames, not ranges: the brute-force scan a SQL-only design would do).

It also times the search matrix's maintenance: a full build from the Parquet shards, appending
one new hour-long video, and the no-change freshness check, and compares vidsearch's float16
top-50 frames with DuckDB's exact float32 top-50.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

QUERY = "a red car"
MODEL_NAME = "bench-512"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """Peak resident set of this process (VmHWM), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kb / 1024**2:.0f} GiB RAM"
    return f"{os.cpu_count()} CPUs ({cpu}){mem}"


# ----------------------------------------------------------------------------- the index


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def video_frames(rng, n: int, dim: int, q: np.ndarray, plant: tuple[int, int, float] | None) -> np.ndarray:
    emb = unit(rng.standard_normal((n, dim), dtype=np.float32))
    if plant:
        s, length, strength = plant
        noise = unit(rng.standard_normal((length, dim), dtype=np.float32))
        emb[s : s + length] = unit(strength * q[None, :] + (1 - strength) * noise)
    return emb


def build_index(work: Path, args) -> dict:
    """The bench index (reused when its parameters match)."""
    from vidsearch.models.encoder import Encoder
    from vidsearch.demo.models import install_model, tiny_random_model
    from vidsearch.core.plan import ChunkSpec, Sampling, plan_chunks
    from vidsearch.index.catalog import Catalog
    from vidsearch.index.shards import IndexStore
    from vidsearch.ingest.channels import sync_catalog

    want = {"frames": args.frames, "videos": args.videos, "dim": args.dim, "chunk_s": args.chunk_s, "seed": 0, "format": 1}
    stamp = work / "index.json"
    if stamp.is_file():
        got = json.loads(stamp.read_text())
        if {k: got.get(k) for k in want} == want:
            return got
    if work.exists():
        shutil.rmtree(work)
    home = work / "home"
    info = install_model(lambda d, name: tiny_random_model(d, dim=args.dim, name=name), MODEL_NAME, home / "models")
    q = Encoder(info).encode_texts([QUERY])[0]
    store = IndexStore(home / "index")
    per_video = args.frames // args.videos
    rng = np.random.default_rng(0)
    planted = []
    sampling = Sampling("fps", 1.0).key
    t0 = time.perf_counter()
    with Catalog(store) as cat:
        cat.register_model(info.model_id, info.name, info.dim, info.to_json())
        for v in range(args.videos):
            vid = f"{v:064x}"
            cat.upsert_video(vid, {"path": f"/bench/cam{v:03d}.mp4", "duration": float(per_video), "width": 1920,
                                   "height": 1080, "fps": 25.0, "codec": "h264", "creation_time": None}, 1)
    n_plant = max(1, args.videos // 14)
    plant_videos = set(rng.choice(args.videos, size=n_plant, replace=False).tolist())
    for v in range(args.videos):
        vid = f"{v:064x}"
        plant = None
        if v in plant_videos:
            length = int(rng.integers(10, 40))
            plant = (int(rng.integers(0, per_video - length)), length, float(rng.uniform(0.5, 0.9)))
            planted.append({"video_id": vid, "start": plant[0], "end": plant[0] + plant[1], "strength": plant[2]})
        emb = video_frames(rng, per_video, args.dim, q, plant)
        for s, e in plan_chunks(float(per_video), args.chunk_s):
            spec = ChunkSpec(vid, f"/bench/cam{v:03d}.mp4", s, e, sampling, info.model_id, args.chunk_s)
            rows = np.arange(int(s), int(e))
            store.write_shard(spec, rows.astype(np.float64), emb[rows])
        if v % 20 == 19:
            el = time.perf_counter() - t0
            log(f"  wrote {v + 1}/{args.videos} videos ({(v + 1) * per_video / el:,.0f} frames/s)")
    with Catalog(store) as cat:
        sync_catalog(cat)
    build_s = time.perf_counter() - t0
    out = {**want, "model_id": info.model_id, "home": str(home), "index": str(store.root), "planted": planted,
           "rows": per_video * args.videos, "write_s": round(build_s, 1)}
    stamp.write_text(json.dumps(out, indent=1))
    return out


# ----------------------------------------------------------------------------- children


def child_numpy(meta: dict, repeat: int) -> dict:
    """float32 ``emb @ q`` over the same rows, in RAM: the memory-bandwidth bound."""
    from vidsearch.index.matrix import MatrixCache
    from vidsearch.index.shards import IndexStore

    index = MatrixCache(IndexStore(meta["index"]), meta["model_id"]).open(refresh=False)
    emb = np.empty(index.emb.shape, np.float32)
    for i in range(0, len(emb), 65536):
        emb[i : i + 65536] = index.emb[i : i + 65536]
    q = unit(np.random.default_rng(1).standard_normal(emb.shape[1], dtype=np.float32))
    emb @ q
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        emb @ q
        times.append(time.perf_counter() - t)
    return {"times": times, "bytes": emb.nbytes}


def child_vidsearch(meta: dict, repeat: int) -> dict:
    """The CLI query command in-process (no process start), then the same steps through the library API."""
    from vidsearch.cli import cli  # imported before timing: process start is not counted

    args = ["--index", meta["index"], "query", QUERY, "--top", "50", "--json", "--model", MODEL_NAME]
    times, out = [], None
    for _ in range(repeat + 1):
        buf = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            cli.main(args, standalone_mode=False)
        times.append(time.perf_counter() - t)
        out = json.loads(buf.getvalue())
    # the parts, through the library
    from vidsearch.models.encoder import Encoder
    from vidsearch.models.contract import load_model_info
    from vidsearch.query.engine import load_frame_index, search_vector
    from vidsearch.index.shards import IndexStore

    store = IndexStore(meta["index"])
    parts = {"text": [], "load": [], "score": [], "search": [], "total": []}
    for _ in range(repeat):
        t = time.perf_counter()
        q = Encoder(load_model_info(MODEL_NAME)).encode_texts([QUERY])[0]  # a new session, as each CLI call
        parts["text"].append(time.perf_counter() - t)
    for _ in range(repeat):
        t0 = t = time.perf_counter()
        t = time.perf_counter()
        index = load_frame_index(store, meta["model_id"])
        parts["load"].append(time.perf_counter() - t)
        t = time.perf_counter()
        scores = index.scores(q)
        parts["score"].append(time.perf_counter() - t)
        t = time.perf_counter()
        search_vector(store, index, q, label=QUERY, semantics="random", top=50, scores=scores)
        parts["search"].append(time.perf_counter() - t)
        parts["total"].append(time.perf_counter() - t0)
    top = np.argpartition(scores, -50)[-50:]
    top_frames = sorted(((index.videos[index.codes[i]], float(index.pts[i]), float(scores[i])) for i in top),
                        key=lambda x: -x[2])
    return {"times": times, "parts": parts, "ranges": out["ranges"], "top_frames": top_frames,
            "dtype": str(index.emb.dtype), "rows": len(index)}


def child_duckdb(meta: dict, repeat: int) -> dict:
    from vidsearch.models.encoder import Encoder
    from vidsearch.models.contract import load_model_info
    from vidsearch.index.catalog import Catalog
    from vidsearch.index.shards import IndexStore, model_slug

    q = Encoder(load_model_info(MODEL_NAME)).encode_texts([QUERY])[0]
    dim = len(q)
    store = IndexStore(meta["index"])
    sql = (f"SELECT video_id, pts, array_cosine_similarity(embedding, ?::FLOAT[{dim}]) AS s "
           f"FROM frames_{model_slug(meta['model_id'])} ORDER BY s DESC LIMIT 50")
    times, rows = [], None
    with Catalog(store, read_only=True) as cat:
        for _ in range(repeat):
            t = time.perf_counter()
            rows = cat.con.execute(sql, [q.tolist()]).fetchall()
            times.append(time.perf_counter() - t)
    return {"times": times, "top_frames": [(v, float(p), float(s)) for v, p, s in rows]}


def run_child(kind: str, meta_path: Path, repeat: int, env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--meta", str(meta_path), "--repeat", str(repeat)]
    env = {**os.environ, **(env or {}), "VIDSEARCH_HOME": json.loads(meta_path.read_text())["home"]}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(f"{kind} run failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- matrix upkeep


def bench_matrix_upkeep(meta: dict, args) -> dict:
    """Full build from Parquet, appending one new video, the no-change check."""
    from vidsearch.index.matrix import MatrixCache
    from vidsearch.core.plan import ChunkSpec, Sampling, plan_chunks
    from vidsearch.index.shards import IndexStore

    os.environ["VIDSEARCH_HOME"] = meta["home"]
    store = IndexStore(meta["index"])
    cache = MatrixCache(store, meta["model_id"])
    out = {}
    if args.rebuild or cache.read_manifest() is None:
        shutil.rmtree(cache.dir, ignore_errors=True)
        t = time.perf_counter()
        cache.refresh()
        out["full_build_s"] = time.perf_counter() - t
        log(f"  full build from Parquet: {out['full_build_s']:.1f} s")
    per_video = args.frames // args.videos
    vid = "f" * 64
    rng = np.random.default_rng(7)
    emb = unit(rng.standard_normal((per_video, args.dim), dtype=np.float32))
    specs = []
    for s, e in plan_chunks(float(per_video), args.chunk_s):
        spec = ChunkSpec(vid, "/bench/extra.mp4", s, e, Sampling().key, meta["model_id"], args.chunk_s)
        store.write_shard(spec, np.arange(int(s), int(e), dtype=np.float64), emb[int(s) : int(e)])
        specs.append(spec)
    t = time.perf_counter()
    cache.refresh()
    out["append_s"] = time.perf_counter() - t
    out["append_action"] = cache.last_action
    out["append_frames"] = per_video
    time.sleep(2.2)  # let the directories settle (see matrix.RACY_NS)
    cache.refresh()
    t = time.perf_counter()
    MatrixCache(store, meta["model_id"]).refresh()
    out["check_s"] = time.perf_counter() - t
    # put the index back as it was: removing the video triggers a full rebuild (timed too)
    shutil.rmtree(store.chunk_dir(specs[0]))
    t = time.perf_counter()
    cache.refresh()
    out["rebuild_s"] = time.perf_counter() - t
    out["rebuild_action"] = cache.last_action
    time.sleep(2.2)
    cache.refresh()  # settle
    return out


# ----------------------------------------------------------------------------- main


def ms(xs) -> float:
    return 1000 * statistics.median(xs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000, help="frames in the index (default 1,000,000)")
    ap.add_argument("--videos", type=int, default=280, help="videos they belong to (default 280: one hour each at 1 fps)")
    ap.add_argument("--dim", type=int, default=512, help="embedding width (default 512, as ViT-B/32)")
    ap.add_argument("--chunk-s", type=float, default=60.0, help="chunk (shard) length in seconds (default 60, as ingest)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median reported)")
    ap.add_argument("--rebuild", action="store_true", help="time a full matrix build from Parquet even if one exists")
    ap.add_argument("--no-upkeep", action="store_true", help="skip the append / rebuild timings")
    ap.add_argument("--work", default=str(REPO / "bench-out"), help="where the bench index goes (reused across runs)")
    ap.add_argument("--json", dest="json_out", help="also write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--meta", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        meta = json.loads(Path(args.meta).read_text())
        res = {"numpy": child_numpy, "vidsearch": child_vidsearch, "duckdb": child_duckdb}[args.child](meta, args.repeat)
        res["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(res))
        return 0

    work = Path(args.work) / f"query-{args.frames}-{args.videos}-{args.dim}"
    log(f"building / reusing the bench index in {work} ...")
    meta = build_index(work, args)
    meta_path = work / "index.json"
    log(f"index: {meta['rows']:,} frames in {args.videos} videos (written in {meta['write_s']} s when built)")

    upkeep = {}
    if not args.no_upkeep:
        log("search matrix upkeep ...")
        upkeep = bench_matrix_upkeep(meta, args)
    else:  # make sure it exists before the timed runs
        os.environ["VIDSEARCH_HOME"] = meta["home"]
        from vidsearch.index.matrix import refresh
        from vidsearch.index.shards import IndexStore

        refresh(IndexStore(meta["index"]), meta["model_id"])

    log("numpy bound ...")
    npy = run_child("numpy", meta_path, args.repeat)
    log("vidsearch query ...")
    vs = run_child("vidsearch", meta_path, args.repeat)
    log("duckdb ...")
    ddb = run_child("duckdb", meta_path, max(1, min(args.repeat, 3)))

    bound = ms(npy["times"])
    rows = [
        ("numpy float32 matvec (bandwidth bound)", bound, 1000 * npy["times"][0], npy["peak_rss_mb"]),
        (f"vidsearch query, CLI API ({vs['dtype']} matrix)", ms(vs["times"][1:]), 1000 * vs["times"][0], vs["peak_rss_mb"]),
        ("  text tower: load + encode (per model)", ms(vs["parts"]["text"]), None, None),
        ("  search over the frames (API), of which:", ms(vs["parts"]["total"]), None, None),
        ("    load_frame_index (freshness check, map)", ms(vs["parts"]["load"]), None, None),
        ("    scores = emb @ q", ms(vs["parts"]["score"]), None, None),
        ("    search_vector (catalog, threshold, ranges)", ms(vs["parts"]["search"]), None, None),
        ("duckdb array_cosine_similarity top-50", ms(ddb["times"]), 1000 * ddb["times"][0], ddb["peak_rss_mb"]),
    ]
    planted = {(p["video_id"]) for p in meta["planted"]}
    found = {r["video_id"] for r in vs["ranges"] if any(
        p["video_id"] == r["video_id"] and r["start"] < p["end"] and r["end"] > p["start"] for p in meta["planted"])}
    same = len({(v, p) for v, p, _ in vs["top_frames"]} & {(v, p) for v, p, _ in ddb["top_frames"]})
    d_scores = {(v, p): s for v, p, s in ddb["top_frames"]}
    max_diff = max((abs(s - d_scores[(v, p)]) for v, p, s in vs["top_frames"] if (v, p) in d_scores), default=float("nan"))

    print(f"\nQuery latency: {meta['rows']:,} frames ({args.videos} videos x {meta['rows'] // args.videos} frames, "
          f"dim {args.dim}), top-50 ranges for {QUERY!r}")
    print(f"machine: {machine()}, no GPU; load average {os.getloadavg()[0]:.1f}")
    print(f"{'':46s} {'median ms':>10s} {'first ms':>9s} {'peak RSS MB':>12s} {'x bound':>8s}")
    for name, med, first, rss in rows:
        print(f"{name:46s} {med:10.1f} {first if first is not None else float('nan'):9.1f} "
              f"{rss if rss is not None else float('nan'):12.0f} {med / bound:8.2f}".replace("nan", "  -"))
    print(f"\nplanted segments found in the top-50 ranges: {len(found)}/{len(planted)}")
    print(f"top-50 frames, float16 matrix vs DuckDB's float32 scan: {same}/50 identical, max score difference {max_diff:.2e}")
    if upkeep:
        if "full_build_s" in upkeep:
            print(f"search matrix full build from Parquet: {upkeep['full_build_s']:.1f} s")
        print(f"append one new video ({upkeep['append_frames']:,} frames, {upkeep['append_action']}): {upkeep['append_s'] * 1000:.0f} ms; "
              f"no-change freshness check: {upkeep['check_s'] * 1000:.1f} ms; "
              f"rebuild after removing it ({upkeep['rebuild_action']}): {upkeep['rebuild_s']:.1f} s")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"machine": machine(), "meta": {k: v for k, v in meta.items() if k != "planted"}, "numpy": npy,
             "vidsearch": {k: v for k, v in vs.items() if k != "top_frames"}, "duckdb": ddb, "upkeep": upkeep,
             "planted_found": len(found), "planted": len(planted), "top50_same": same, "max_score_diff": max_diff},
            indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
