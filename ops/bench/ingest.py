#!/usr/bin/env python
"""Ingest speed: vidsearch vs the naive loop blog tutorials write, same model, same sampling, same run.

    python ops/bench/ingest.py                       # 2 x 60 s of 1080p25 H.264, ViT-B/32-sized random model
    python ops/bench/ingest.py --model tiny          # the tiny random model: decoding dominates
    python ops/bench/ingest.py --archive DIR --model ~/.local/share/vidsearch/models/clip-vit-b-32

The archive (default: generated once under ``bench-out/archive-1080p/`` with
``vidsearch.demo.synth.make_video``) is indexed by:

* ``baseline``: decode every frame to an RGB array (PyAV defaults; what ``cv2.VideoCapture.read()``
  tutorials do), keep the first frame at or after each 1/fps grid time, PIL-resize (bicubic)
  the short side to the model's input size, centre-crop, normalise, run the image tower on it
  alone (batch 1). A kinder variant converts only the kept frames to RGB (printed too);
* ``vidsearch fps=1``: ``vidsearch.ingest.pipeline.ingest`` with the local backend into a fresh index
  (decode thread feeding batches to the encoder, swscale resize, chunk shards + catalog);
* ``vidsearch keyframes``: the same with ``--keyframes`` (only keyframes are decoded).

It prints video seconds indexed per wall second for each and the ratio to the baseline, plus
``decode only`` (vidsearch's decoder over the same chunks, no model) and ``encode only`` (the
image tower on as many frames, batches of ``--batch``) so the overlap is visible: ingest time
should be close to max(decode, encode), not their sum. Last, the peak memory of an ingest
after its first and its last chunk (it must not grow with video length).

Numbers depend on the content: synthetic footage decodes faster than camera footage, so the
decoder's share (and vidsearch's advantage) is larger on real archives.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _encoder_bench():
    spec = importlib.util.spec_from_file_location("bench_encoder", Path(__file__).with_name("encoder.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def get_model(args):
    from vidsearch.models.contract import load_model_info
    from vidsearch.demo.models import tiny_random_model

    if args.model == "tiny":
        d = Path(args.work) / "models" / "tiny-224"
        try:
            return load_model_info(d)
        except Exception:
            return tiny_random_model(d, dim=512, image_size=224, name="tiny-224")
    if args.model == "vit":
        return _encoder_bench().get_model(argparse.Namespace(model=None, work=args.work))
    return load_model_info(args.model)


def videos_of(args) -> list[Path]:
    if args.archive:
        from vidsearch.ingest.plan import scan

        return scan([args.archive])[0]
    return _encoder_bench().make_archive(Path(args.work) / "archive-1080p", args.videos, args.video_seconds, args.video_fps)


def rss_mb(field: str = "VmRSS") -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ----------------------------------------------------------------------------- the naive baseline


def baseline(videos: list[Path], info, encoder, fps: float, every_frame_rgb: bool = True) -> dict:
    """The tutorial loop: every frame decoded (to an RGB array, as ``cv2.VideoCapture.read()``
    returns it, unless ``every_frame_rgb`` is false), one per 1/fps kept, PIL resize, batch-1 inference."""
    import av
    from PIL import Image

    size = info.image_size
    mean = np.asarray(info.mean, np.float32)
    std = np.asarray(info.std, np.float32)
    frames, seconds = 0, 0.0
    t0 = time.perf_counter()
    for path in videos:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            next_t = 0.0
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base)
                rgb = frame.to_ndarray(format="rgb24") if every_frame_rgb else None
                if t + 1e-6 < next_t:
                    continue
                next_t += 1.0 / fps
                img = Image.fromarray(rgb) if rgb is not None else frame.to_image()
                w, h = img.size
                s = size / min(w, h)
                img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
                left, top = (img.width - size) // 2, (img.height - size) // 2
                x = np.asarray(img.crop((left, top, left + size, top + size)), np.float32) / 255.0
                x = ((x - mean) / std).transpose(2, 0, 1)[None]
                encoder.encode_images(np.ascontiguousarray(x))
                frames += 1
            seconds += float(stream.duration * stream.time_base) if stream.duration else t
    return {"frames": frames, "seconds": seconds, "wall_s": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- vidsearch


def plan_specs(videos: list[Path], info, sampling, chunk_s: float):
    from vidsearch.core.plan import plan_video
    from vidsearch.media.video import probe

    specs = []
    for i, v in enumerate(videos):
        specs += plan_video(f"{i:064x}", str(v), probe(v).duration, info.model_id, sampling, chunk_s)
    return specs


def decode_only(videos, info, sampling, chunk_s: float) -> dict:
    from vidsearch.ingest.embed import sampled_crops

    specs = plan_specs(videos, info, sampling, chunk_s)
    t0 = time.perf_counter()
    n = sum(1 for spec in specs for _ in sampled_crops(spec, info))
    return {"frames": n, "seconds": sum(s.end - s.start for s in specs), "wall_s": time.perf_counter() - t0}


def encode_only(info, encoder, frames: int, batch: int) -> dict:
    from vidsearch.core.preprocess import to_tensor

    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (info.image_size, info.image_size, 3), dtype=np.uint8) for _ in range(min(batch, frames))]
    t0 = time.perf_counter()
    done = 0
    while done < frames:
        k = min(batch, frames - done)
        encoder.encode_images(to_tensor(crops[:k], info.mean, info.std))
        done += k
    return {"frames": frames, "wall_s": time.perf_counter() - t0}


def vidsearch_ingest(videos, info, encoder, sampling, args, progress=None) -> dict:
    from vidsearch.ingest.local import LocalBackend
    from vidsearch.ingest.pipeline import ingest
    from vidsearch.ingest.plan import IngestOptions
    from vidsearch.index.shards import IndexStore

    with tempfile.TemporaryDirectory(prefix="vidsearch-bench-") as tmp:
        root = Path(tmp) / "archive"
        root.mkdir()
        for i, v in enumerate(videos):  # links: the same files, scanned as one archive
            os.symlink(v, root / f"{i:03d}-{v.name}")
        store = IndexStore(Path(tmp) / "index")
        opts = IngestOptions(chunk_s=args.chunk_s, sampling=sampling, batch_size=args.batch)
        rep = ingest([root], store, info, LocalBackend(encoder, batch_size=args.batch), opts, progress=progress)
    if rep.chunks_failed:
        raise SystemExit(f"ingest failed: {rep.failures[:1]}")
    return {"frames": rep.frames, "seconds": rep.seconds_indexed, "wall_s": rep.wall_s}


def child_memory(args) -> dict:
    """RSS and peak RSS after the first and after the last chunk of an fps ingest (in its own process)."""
    from vidsearch.models.encoder import Encoder
    from vidsearch.core.plan import Sampling

    info = get_model(args)
    encoder = Encoder(info, providers="cpu", intra_op_threads=args.threads)
    marks = []
    vidsearch_ingest(videos_of(args), info, encoder, Sampling("fps", args.sample_fps), args,
                     progress=lambda spec, marker: marks.append((spec.end, rss_mb(), rss_mb("VmHWM"))))
    return {"first": marks[0], "last": marks[-1], "chunks": len(marks)}


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit", help="vit (ViT-B/32-sized, random weights; default), tiny, or a model directory")
    ap.add_argument("--archive", help="index this directory instead of the generated 1080p archive")
    ap.add_argument("--videos", type=int, default=2, help="generated videos (default 2)")
    ap.add_argument("--video-seconds", type=float, default=60.0, help="length of each generated video (default 60)")
    ap.add_argument("--video-fps", type=int, default=25, help="frame rate of the generated videos (default 25)")
    ap.add_argument("--sample-fps", type=float, default=1.0, help="frames kept per video second (default 1)")
    ap.add_argument("--chunk-s", type=float, default=60.0, help="ingest chunk length (default 60)")
    ap.add_argument("--batch", type=int, default=32, help="vidsearch's encoder batch size (default 32)")
    ap.add_argument("--memory-chunk-s", type=float, default=10.0,
                    help="chunk length of the memory run (default 10: many chunks, to see whether memory grows)")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: baseline,decode,encode,fps,keyframes,memory")
    ap.add_argument("--work", default=str(REPO / "bench-out"), help="where the model and the archive go")
    ap.add_argument("--json", dest="json_out", help="also write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child == "memory":
        print(json.dumps(child_memory(args)))
        return 0

    from vidsearch.models.encoder import Encoder
    from vidsearch.core.plan import Sampling

    skip = set(filter(None, args.skip.split(",")))
    info = get_model(args)
    videos = videos_of(args)
    encoder = Encoder(info, providers="cpu", intra_op_threads=args.threads)
    encoder.encode_images(np.zeros((1, 3, info.image_size, info.image_size), np.float32))  # session start: not timed
    fps = Sampling("fps", args.sample_fps)
    res: dict = {"model": info.model_id, "arch": info.arch, "videos": [str(v) for v in videos], "cpus": os.cpu_count(),
                 "load_start": os.getloadavg()[0]}
    log(f"model {info.name} ({info.arch}, {info.image_size}px); {len(videos)} videos; load average {os.getloadavg()[0]:.1f}")
    if "baseline" not in skip:
        log("baseline ...")
        res["baseline"] = baseline(videos, info, encoder, args.sample_fps)
        res["baseline_lazy"] = baseline(videos, info, encoder, args.sample_fps, every_frame_rgb=False)
    if "decode" not in skip:
        log("decode only ...")
        res["decode"] = decode_only(videos, info, fps, args.chunk_s)
        res["decode_keyframes"] = decode_only(videos, info, Sampling("keyframes"), args.chunk_s)
    if "encode" not in skip:
        log("encode only ...")
        n = res.get("decode", res.get("baseline", {"frames": 120}))["frames"]
        res["encode"] = encode_only(info, encoder, n, args.batch)
        if "decode_keyframes" in res:
            res["encode_keyframes"] = encode_only(info, encoder, res["decode_keyframes"]["frames"], args.batch)
    if "fps" not in skip:
        log("vidsearch fps ...")
        res["fps"] = vidsearch_ingest(videos, info, encoder, fps, args)
    if "keyframes" not in skip:
        log("vidsearch keyframes ...")
        res["keyframes"] = vidsearch_ingest(videos, info, encoder, Sampling("keyframes"), args)
    if "memory" not in skip:
        log("memory ...")
        cmd = [sys.executable, __file__, "--child", "memory", "--model", args.model, "--work", args.work,
               "--videos", str(args.videos), "--video-seconds", str(args.video_seconds), "--video-fps", str(args.video_fps),
               "--sample-fps", str(args.sample_fps), "--chunk-s", str(args.memory_chunk_s), "--batch", str(args.batch)]
        if args.archive:
            cmd += ["--archive", args.archive]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        res["memory"] = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {"error": p.stderr[-2000:]}
    res["load_end"] = os.getloadavg()[0]

    seconds = next((res[k]["seconds"] for k in ("fps", "decode", "baseline") if k in res), None)
    print(f"\nIngest: {len(videos)} videos, {seconds or 0:.0f} s of video; model {info.name} ({info.arch or 'tiny'}, "
          f"{info.image_size}px); sampling {args.sample_fps:g} fps; batch {args.batch}; {os.cpu_count()} CPUs, no GPU; "
          f"load average {res['load_start']:.1f} -> {res['load_end']:.1f}")
    print(f"{'':34s} {'frames':>7s} {'wall s':>8s} {'video s / wall s':>17s} {'x baseline':>11s}")
    base = res.get("baseline")
    base_rate = base["seconds"] / base["wall_s"] if base else None
    for key, name in [("baseline", "baseline (tutorial loop)"), ("baseline_lazy", "  baseline, RGB only for kept frames"), ("fps", f"vidsearch fps={args.sample_fps:g}"),
                      ("keyframes", "vidsearch --keyframes"), ("decode", "  decode only (fps)"),
                      ("encode", "  encode only (fps frames)"), ("decode_keyframes", "  decode only (keyframes)"),
                      ("encode_keyframes", "  encode only (keyframe frames)")]:
        r = res.get(key)
        if not r:
            continue
        rate = (seconds / r["wall_s"]) if seconds and r["wall_s"] else float("nan")
        x = f"{rate / base_rate:.2f}" if base_rate else "-"
        print(f"{name:34s} {r['frames']:7d} {r['wall_s']:8.2f} {rate:17.2f} {x:>11s}")
    if "fps" in res and "decode" in res and "encode" in res:
        d, e, c = res["decode"]["wall_s"], res["encode"]["wall_s"], res["fps"]["wall_s"]
        print(f"overlap (fps): ingest {c:.2f} s vs decode + encode {d + e:.2f} s and max(decode, encode) {max(d, e):.2f} s")
    if "keyframes" in res and "decode_keyframes" in res and "encode_keyframes" in res:
        d, e, c = res["decode_keyframes"]["wall_s"], res["encode_keyframes"]["wall_s"], res["keyframes"]["wall_s"]
        print(f"overlap (keyframes): ingest {c:.2f} s vs decode + encode {d + e:.2f} s and max(decode, encode) {max(d, e):.2f} s")
    m = res.get("memory")
    if m and "first" in m:
        print(f"memory (fps ingest, own process, {args.memory_chunk_s:g} s chunks): RSS {m['first'][1]:.0f} MB after the first chunk, "
              f"{m['last'][1]:.0f} MB after the last ({m['chunks']} chunks); peak {m['last'][2]:.0f} MB")
    elif m:
        print(f"memory: failed: {m['error'][-300:]}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
