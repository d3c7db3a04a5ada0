#!/usr/bin/env python
"""Image-encoder throughput per execution provider and batch size, and end-to-end ingest rate.

    python ops/bench/encoder.py                       # every provider that really works here
    python ops/bench/encoder.py --providers cpu --batches 1,8 --no-ingest
    python ops/bench/encoder.py --model ~/.local/share/vidsearch/models/clip-vit-b-32 --json out.json

Without ``--model`` it builds a ViT-B/32-sized image tower with *random weights* (open_clip +
torch, the ``export`` extra) once under ``bench-out/models/``: the speed is that of the real
architecture, the embeddings mean nothing.

Part 1 prints images/s per provider x batch size, with ratios against batch 1 of the same provider
and against CPU at the same batch size (all measured in this run). For TensorRT it also prints the
session start time with an empty engine cache (engine build) and with the cache filled (what a
restarted worker pays).

Part 2 generates a 1080p H.264 archive (once, under ``bench-out/archive-1080p/``) and ingests it
with each provider into a fresh index: video seconds indexed per wall second, frames per second.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vidsearch.models import providers as P  # noqa: E402
from vidsearch.models.encoder import Encoder  # noqa: E402
from vidsearch.models.contract import IMAGE_FILE, IMAGE_INPUT, IMAGE_OUTPUT, ModelInfo, load_model_info, write_model_dir  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- model


def build_random_vit(out_dir: Path, arch: str = "ViT-B-32") -> ModelInfo:
    """A model directory whose image tower is ``arch`` with random weights (text tower: tiny)."""
    try:
        from vidsearch.models.openclip_export import export_open_clip  # the project's exporter (both towers, checked vs torch)
    except ImportError:
        export_open_clip = None
    if export_open_clip is not None:
        log(f"exporting {arch} with random weights via vidsearch.models.openclip_export to {out_dir} ...")
        return export_open_clip(arch, out=out_dir, random_weights=True, force=True, progress=log)

    import torch
    import open_clip

    from vidsearch.demo.models import tiny_random_model

    out_dir.mkdir(parents=True, exist_ok=True)
    model = open_clip.create_model(arch, pretrained=None).eval()
    size = int(model.visual.image_size[0] if isinstance(model.visual.image_size, (tuple, list)) else model.visual.image_size)
    with torch.no_grad():
        dim = int(model.encode_image(torch.zeros(1, 3, size, size)).shape[-1])
    # fallback without vidsearch.models.openclip_export: only the image tower is real; the text tower is not
    # benchmarked, a tiny one of the right width completes the contract
    tiny_random_model(out_dir, dim=dim, image_size=size, name=f"{arch.lower()}-random")

    class Image(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m.encode_image(pixel_values)

    log(f"exporting {arch} (random weights) to {out_dir / IMAGE_FILE} ...")
    kw = dict(input_names=[IMAGE_INPUT], output_names=[IMAGE_OUTPUT],
              dynamic_axes={IMAGE_INPUT: {0: "batch"}, IMAGE_OUTPUT: {0: "batch"}}, opset_version=17)
    # not under no_grad: there torch takes the fused multi-head-attention fast path, which the
    # TorchScript exporter cannot translate
    if hasattr(torch.backends, "mha"):
        torch.backends.mha.set_fastpath_enabled(False)
    try:
        torch.onnx.export(Image(model), (torch.zeros(2, 3, size, size),), str(out_dir / IMAGE_FILE), dynamo=False, **kw)
    except TypeError:  # older torch without the dynamo argument
        torch.onnx.export(Image(model), (torch.zeros(2, 3, size, size),), str(out_dir / IMAGE_FILE), **kw)
    info = load_model_info(out_dir)
    import dataclasses

    info = dataclasses.replace(
        info, name=f"{arch.lower()}-random", arch=arch, semantics="random",
        description=f"{arch} image tower with random weights, for benchmarks only",
    )
    return write_model_dir(out_dir, info)


def get_model(args) -> ModelInfo:
    if args.model:
        return load_model_info(args.model)
    d = Path(args.work) / "models" / "vit-b-32-random"
    try:
        info = load_model_info(d)
        if info.arch == "ViT-B-32":
            return info
    except Exception:
        pass
    tmp = d.with_name(d.name + ".partial")  # built aside, renamed when complete
    for stale in (d, tmp):
        if stale.exists():
            shutil.rmtree(stale)
    build_random_vit(tmp)
    os.replace(tmp, d)
    return load_model_info(d)


# ----------------------------------------------------------------------------- part 1


def usable_providers() -> list[str]:
    out = []
    for name in P.AUTO_ORDER:
        if name in P.available_providers():
            r = P.probe_provider(name)
            if r["usable"]:
                out.append(P.short_name(name))
            else:
                log(f"skipping {P.short_name(name)}: {r['error']}")
    return out


def time_batch(enc: Encoder, batch: int, size: int, min_seconds: float, min_iters: int) -> dict:
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    t0 = time.perf_counter()
    enc.encode_images(x)  # warm-up (first run of a shape: allocations, cuDNN/TensorRT selection)
    warm = time.perf_counter() - t0
    iters, t0 = 0, time.perf_counter()
    while True:
        enc.encode_images(x)
        iters += 1
        el = time.perf_counter() - t0
        if el >= min_seconds and iters >= min_iters:
            break
    return {"batch": batch, "iters": iters, "seconds": round(el, 3), "warmup_s": round(warm, 3),
            "images_per_s": batch * iters / el, "ms_per_batch": 1000 * el / iters}


def bench_encoder(info: ModelInfo, provider: str, batches: list[int], args, cache_root: Path) -> dict:
    os.environ["VIDSEARCH_TRT_CACHE"] = str(cache_root)
    res: dict = {"provider": provider, "rows": []}
    t0 = time.perf_counter()
    enc = Encoder(info, providers=provider, intra_op_threads=args.threads)
    x = np.zeros((1, 3, info.image_size, info.image_size), dtype=np.float32)
    enc.encode_images(x)
    res["start_s"] = round(time.perf_counter() - t0, 3)  # TensorRT: engine build with an empty cache
    res["session_providers"] = enc.providers("image")
    if provider == "tensorrt":
        del enc
        t0 = time.perf_counter()
        enc = Encoder(info, providers=provider, intra_op_threads=args.threads)
        enc.encode_images(x)
        res["restart_s"] = round(time.perf_counter() - t0, 3)  # engine loaded from the cache
    for b in batches:
        r = time_batch(enc, b, info.image_size, args.seconds, args.min_iters)
        res["rows"].append(r)
        log(f"  {provider:8s} batch {b:4d}: {r['images_per_s']:9.1f} images/s ({r['ms_per_batch']:.1f} ms/batch, {r['iters']} runs)")
    return res


# ----------------------------------------------------------------------------- part 2


def make_archive(root: Path, videos: int, seconds: float, fps: int) -> list[Path]:
    from vidsearch.demo.synth import make_video

    stamp = root / "archive.json"
    want = {"videos": videos, "seconds": seconds, "fps": fps, "size": [1920, 1080]}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return sorted(root.glob("*.mp4"))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    colours = ["red", "blue", "green", "yellow", "orange", "purple"]
    out = []
    for i in range(videos):
        t = time.perf_counter()
        scenes = [(s, s + seconds / 6, colours[(i + k) % len(colours)]) for k, s in enumerate(np.arange(0, seconds, seconds / 3))]
        out.append(make_video(root / f"cam{i:02d}.mp4", seconds, scenes, size=(1920, 1080), fps=fps, seed=i))
        log(f"  generated {out[-1].name} ({seconds:g} s of 1080p at {fps} fps) in {time.perf_counter() - t:.1f} s")
    stamp.write_text(json.dumps(want))
    return out


def bench_ingest(info: ModelInfo, provider: str, archive: Path, args, cache_root: Path) -> dict:
    from vidsearch.ingest.local import LocalBackend
    from vidsearch.ingest.pipeline import ingest
    from vidsearch.ingest.plan import IngestOptions
    from vidsearch.core.plan import Sampling
    from vidsearch.index.shards import IndexStore

    os.environ["VIDSEARCH_TRT_CACHE"] = str(cache_root)
    enc = Encoder(info, providers=provider, intra_op_threads=args.threads)
    enc.encode_images(np.zeros((1, 3, info.image_size, info.image_size), dtype=np.float32))  # not timed: engine build
    with tempfile.TemporaryDirectory(prefix="vidsearch-bench-index-") as tmp:
        store = IndexStore(Path(tmp) / "index")
        opts = IngestOptions(sampling=Sampling("fps", args.sample_fps), batch_size=args.ingest_batch)
        rep = ingest([archive], store, info, LocalBackend(enc, batch_size=args.ingest_batch), opts)
    if rep.chunks_failed:
        log(f"  {provider}: {rep.chunks_failed} chunks failed: {rep.failures[:1]}")
    return {
        "provider": provider, "session_providers": rep.providers, "videos": rep.videos, "frames": rep.frames,
        "seconds_indexed": rep.seconds_indexed, "wall_s": rep.wall_s,
        "video_s_per_wall_s": rep.seconds_indexed / rep.wall_s if rep.wall_s else 0.0,
        "frames_per_s": rep.frames / rep.wall_s if rep.wall_s else 0.0,
    }


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory or installed name (default: random-weight ViT-B/32, built once)")
    ap.add_argument("--providers", default=None, help="comma list of tensorrt,cuda,cpu (default: every one that works here)")
    ap.add_argument("--batches", default="1,8,32,64", help="batch sizes (default 1,8,32,64)")
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per measurement")
    ap.add_argument("--min-iters", type=int, default=3, help="minimum timed runs per measurement")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)")
    ap.add_argument("--no-ingest", action="store_true", help="skip the end-to-end ingest part")
    ap.add_argument("--videos", type=int, default=2, help="1080p videos in the generated archive")
    ap.add_argument("--video-seconds", type=float, default=60.0, help="length of each generated video")
    ap.add_argument("--video-fps", type=int, default=25, help="frame rate of the generated videos")
    ap.add_argument("--sample-fps", type=float, default=1.0, help="frames sampled per video second at ingest")
    ap.add_argument("--ingest-batch", type=int, default=32, help="encoder batch size during ingest")
    ap.add_argument("--work", default=str(REPO / "bench-out"), help="where models, archive and engine caches go")
    ap.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    providers = [P.normalise_choice(p) for p in args.providers.split(",")] if args.providers else usable_providers()
    info = get_model(args)
    cache_root = work / "trt-cache"
    gpu = P.gpu_info()
    import onnxruntime as ort

    results: dict = {
        "model": info.model_id, "arch": info.arch, "image_size": info.image_size,
        "onnxruntime": ort.__version__, "gpu": gpu, "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg()[0],
        "encoder": [], "ingest": [],
    }
    log(f"model {info.model_id} ({info.arch}, {info.image_size}px); onnxruntime {ort.__version__}; "
        f"gpu: {gpu['name'] if gpu else 'none'}; cpus: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; "
        f"providers: {', '.join(providers)}")

    for p in list(providers):
        try:
            results["encoder"].append(bench_encoder(info, p, batches, args, cache_root))
        except P.ProviderError as e:  # asked for a provider this machine cannot run: say so, go on
            print(f"{p}: skipped: {e}")
            providers.remove(p)

    print(f"\nImage encoder throughput ({info.arch or info.name}, {info.image_size}px)")
    cpu = {r["batch"]: r["images_per_s"] for e in results["encoder"] if e["provider"] == "cpu" for r in e["rows"]}
    print(f"{'provider':9s} {'runs on':9s} {'batch':>5s} {'images/s':>10s} {'ms/batch':>9s} {'x batch1':>9s} {'x cpu':>7s}")
    for e in results["encoder"]:
        base = e["rows"][0]["images_per_s"] if e["rows"] else None
        runs_on = P.short_name(e["session_providers"][0])
        for r in e["rows"]:
            vs_b1 = f"{r['images_per_s'] / base:.2f}" if base and e["rows"][0]["batch"] == 1 else "-"
            vs_cpu = f"{r['images_per_s'] / cpu[r['batch']]:.2f}" if r["batch"] in cpu else "-"
            r["x_batch1"], r["x_cpu"] = vs_b1, vs_cpu
            print(f"{e['provider']:9s} {runs_on:9s} {r['batch']:5d} {r['images_per_s']:10.1f} {r['ms_per_batch']:9.1f} {vs_b1:>9s} {vs_cpu:>7s}")
        extra = f"session start {e['start_s']:.2f} s"
        if "restart_s" in e:
            extra += f" (empty engine cache); restart with cache {e['restart_s']:.2f} s"
        print(f"{'':9s} {extra}")

    if not args.no_ingest:
        try:
            import vidsearch.ingest.pipeline  # noqa: F401
        except ImportError:
            print("\nend-to-end ingest: skipped (vidsearch.ingest.pipeline is not available)")
        else:
            log("generating / reusing the 1080p archive ...")
            archive_dir = work / "archive-1080p"
            vids = make_archive(archive_dir, args.videos, args.video_seconds, args.video_fps)
            for p in providers:
                log(f"ingesting with {p} ...")
                results["ingest"].append(bench_ingest(info, p, archive_dir, args, cache_root))
            total = sum(v.stat().st_size for v in vids) / 1e6
            print(f"\nEnd-to-end ingest: {len(vids)} x {args.video_seconds:g} s 1080p{args.video_fps} H.264 ({total:.0f} MB), "
                  f"sampling {args.sample_fps:g} fps, batch {args.ingest_batch}")
            base = next((r["video_s_per_wall_s"] for r in results["ingest"] if r["provider"] == "cpu"), None)
            print(f"{'provider':9s} {'runs on':9s} {'frames':>7s} {'wall s':>8s} {'video s/wall s':>15s} {'frames/s':>9s} {'x cpu':>7s}")
            for r in results["ingest"]:
                vs = f"{r['video_s_per_wall_s'] / base:.2f}" if base else "-"
                runs_on = P.short_name(r["session_providers"][0]) if r["session_providers"] else "-"
                print(f"{r['provider']:9s} {runs_on:9s} {r['frames']:7d} {r['wall_s']:8.2f} {r['video_s_per_wall_s']:15.2f} "
                      f"{r['frames_per_s']:9.1f} {vs:>7s}")

    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
