#!/usr/bin/env python
"""Image encoder fp32 vs int8 (``vidsearch model quantize``) on this CPU, same run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ops/bench/encoder_int8.py
    python ops/bench/encoder_int8.py --model ~/.local/share/vidsearch/models/clip-vit-b-32

Default model: a ViT-B/32-sized image tower with random weights (built once under
``bench-out/models/`` by ``ops/bench/encoder.py``'s builder; the speed is that of the real
architecture). The int8 model is built with :func:`vidsearch.models.quantize.quantize_model`
(which also runs its agreement check on generated CCTV-like stills) into ``bench-out/models-int8/``.

Printed: images/s per batch size for both towers, measured alternately (fp32, int8, fp32, int8
...; the best of ``--rounds`` rounds each, so a neighbour's load spike hurts both alike), the
ratio, and the output cosine of the two towers on real-looking frames. ``--ingest`` adds an
end-to-end ``vidsearch.ingest.pipeline.ingest`` of a generated 1080p clip with each model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
for p in (str(REPO), str(REPO / "ops" / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

from vidsearch.models.contract import load_model_info  # noqa: E402
from vidsearch.models.encoder import Encoder  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def get_models(args):
    from encoder import get_model  # ops/bench/encoder.py: the random ViT-B/32 builder

    from vidsearch.demo.cctv import sample_frames
    from vidsearch.models.quantize import quantize_model

    fp32 = get_model(args)
    root = Path(args.work) / "models-int8"
    name = fp32.name + "-int8"
    try:
        int8 = load_model_info(root / name)
        if json.loads((root / name / "model.json").read_text()).get("source_model", {}).get("model_id") == fp32.model_id:
            return fp32, int8, None
    except Exception:
        pass
    t0 = time.perf_counter()
    res = quantize_model(fp32.path, sample_frames(200), root=root, force=True, say=log)
    log(f"quantized in {time.perf_counter() - t0:.1f} s; {res.agreement.summary()}")
    return fp32, res.info, res.agreement


def time_batch(enc: Encoder, x: np.ndarray, min_seconds: float) -> float:
    enc.encode_images(x)  # warm-up
    iters, t0 = 0, time.perf_counter()
    while True:
        enc.encode_images(x)
        iters += 1
        el = time.perf_counter() - t0
        if el >= min_seconds and iters >= 2:
            return len(x) * iters / el


def output_cosine(a: Encoder, b: Encoder) -> tuple[float, float]:
    from vidsearch.demo.cctv import sample_frames
    from vidsearch.models.quantize import pixels

    x = pixels(sample_frames(64, seed=11), a.info)
    ea, eb = a.encode_images(x), b.encode_images(x)
    cos = np.sum(ea * eb, axis=1)
    return float(cos.mean()), float(cos.min())


def bench_ingest(info, args) -> dict:
    from vidsearch.core.plan import Sampling
    from vidsearch.demo.cctv import make_cctv
    from vidsearch.index.shards import IndexStore
    from vidsearch.ingest.local import LocalBackend
    from vidsearch.ingest.pipeline import IngestOptions, ingest

    clip = Path(args.work) / "cctv-int8" / "clip.mp4"
    if not clip.is_file():
        make_cctv(clip, args.ingest_seconds, (1920, 1080), fps=5)
    enc = Encoder(info, providers="cpu", intra_op_threads=args.threads)
    enc.encode_images(np.zeros((1, 3, info.image_size, info.image_size), np.float32))
    with tempfile.TemporaryDirectory(prefix="vidsearch-bench-int8-") as tmp:
        store = IndexStore(Path(tmp) / "index")
        rep = ingest([clip.parent], store, info, LocalBackend(enc, batch_size=32), IngestOptions(sampling=Sampling("fps", 1.0)))
    return {"model": info.model_id, "frames": rep.frames, "wall_s": rep.wall_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="fp32 model directory or installed name (default: random-weight ViT-B/32)")
    ap.add_argument("--batches", default="1,8,32", help="batch sizes (default 1,8,32)")
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per measurement")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each is kept")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)")
    ap.add_argument("--ingest", action="store_true", help="also ingest a generated 1080p clip with each model")
    ap.add_argument("--ingest-seconds", type=float, default=120.0, help="length of that clip")
    ap.add_argument("--work", default=str(REPO / "bench-out"))
    ap.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    import onnxruntime as ort

    fp32, int8, check = get_models(args)
    log(f"fp32 {fp32.model_id}, int8 {int8.model_id}; onnxruntime {ort.__version__}; cpus {os.cpu_count()}; "
        f"load average {os.getloadavg()[0]:.1f}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    encs = {"fp32": Encoder(fp32, providers="cpu", intra_op_threads=args.threads),
            "int8": Encoder(int8, providers="cpu", intra_op_threads=args.threads)}
    rows = []
    for b in [int(s) for s in args.batches.split(",") if s.strip()]:
        x = np.random.default_rng(b).standard_normal((b, 3, fp32.image_size, fp32.image_size), dtype=np.float32)
        best = {k: 0.0 for k in encs}
        for _ in range(args.rounds):
            for k, enc in encs.items():
                best[k] = max(best[k], time_batch(enc, x, args.seconds))
        rows.append({"batch": b, "fp32_images_per_s": best["fp32"], "int8_images_per_s": best["int8"],
                     "ratio": best["int8"] / best["fp32"]})
        log(f"  batch {b:3d}: fp32 {best['fp32']:7.1f}/s  int8 {best['int8']:7.1f}/s  x{best['int8'] / best['fp32']:.2f}")
    mean_cos, min_cos = output_cosine(encs["fp32"], encs["int8"])
    sizes = [(m.path / "image.onnx").stat().st_size / 1e6 for m in (fp32, int8)]
    print(f"\nImage encoder fp32 vs int8 ({fp32.arch or fp32.name}, {fp32.image_size}px, CPU, same run)")
    print(f"{'batch':>5s} {'fp32 img/s':>11s} {'int8 img/s':>11s} {'x fp32':>7s}")
    for r in rows:
        print(f"{r['batch']:5d} {r['fp32_images_per_s']:11.1f} {r['int8_images_per_s']:11.1f} {r['ratio']:7.2f}")
    print(f"output cosine fp32 vs int8 on 64 CCTV-like stills: mean {mean_cos:.5f}, min {min_cos:.5f}; "
          f"image.onnx {sizes[0]:.0f} MB -> {sizes[1]:.0f} MB")
    if check is not None:
        print(f"install check: {check.summary()}")
    out = {"fp32": fp32.model_id, "int8": int8.model_id, "rows": rows, "cosine": [mean_cos, min_cos],
           "check": check.to_dict() if check else None, "loadavg": os.getloadavg()[0], "ingest": []}
    if args.ingest:
        for info in (fp32, int8):
            log(f"ingesting with {info.model_id} ...")
            out["ingest"].append(bench_ingest(info, args))
        a, b = out["ingest"]
        print(f"ingest of {a['frames']} frames (1080p, 1 fps): fp32 {a['wall_s']:.1f} s, int8 {b['wall_s']:.1f} s, "
              f"x{a['wall_s'] / b['wall_s']:.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
