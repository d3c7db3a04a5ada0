#!/usr/bin/env python
"""OCR and sentence-embedding speed for the on-screen text channel (needs the ocr extra).

    python ops/bench/ocr.py                 # 640x360 and 1280x720 frames, 10 reads each
    python ops/bench/ocr.py --sizes 1920x1080 --reads 5 --threads 2 --json out.json

Part 1: seconds per frame for RapidOCR's own defaults (short side scaled up to 736 px, angle
classifier on: the baseline, measured in this run) and for vidsearch's OcrReader settings
(long side at most 960 px, no angle classifier), with the ratio to the baseline and whether
each setting read every rendered line. Part 2: sentence embedder start-up time, one-sentence
latency and batched lines per second.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vidsearch.ocr import textmatch as tm  # noqa: E402
from vidsearch.ocr.reader import OcrReader, _to_lines, merge_rows  # noqa: E402
from vidsearch.demo.synth_text import TextSegment, render_text_frame  # noqa: E402

TEXTS = ["EMERGENCY EXIT", "FRESH BREAD", "VAN 42 DELIVERY"]


def _frame(size):
    segs = [TextSegment(0, 1, TEXTS[0]), TextSegment(0, 1, TEXTS[1]),
            TextSegment(0, 1, TEXTS[2], position=(0.05, 0.85), font_size=max(12, size[1] // 20))]
    return render_text_frame(segs, size=size)


def _read_all(lines) -> bool:
    """Every rendered text is found (exactly or fuzzily) among the lines read."""
    texts = [l.text for l in lines]
    return all(tm.lexical_scores(t, texts)[0].max(initial=0) > 0 for t in TEXTS)


def bench_ocr(sizes, reads, threads):
    from rapidocr_onnxruntime import RapidOCR

    rows = []
    for size in sizes:
        frame = _frame(size)
        bgr = np.ascontiguousarray(frame[..., ::-1])
        baseline = RapidOCR(intra_op_num_threads=threads or -1)
        ours = OcrReader(threads=threads).load()
        def run_baseline(use_cls, bgr=bgr, size=size, engine=baseline):
            return merge_rows(_to_lines(engine(bgr, use_cls=use_cls)[0], *size), aspect=size[0] / size[1])

        cases = {
            "rapidocr defaults": lambda: run_baseline(True),
            "rapidocr defaults, no cls": lambda: run_baseline(False),
            "vidsearch OcrReader": lambda: ours.read(frame),  # noqa: B023 - called in this iteration
        }
        base_s = None
        for name, fn in cases.items():
            lines = fn()  # warm-up
            ts = []
            for _ in range(reads):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            med = float(np.median(ts))
            base_s = base_s or med
            row = {"size": f"{size[0]}x{size[1]}", "setting": name, "s_per_frame": round(med, 4),
                   "speedup_vs_defaults": round(base_s / med, 2), "read_all_lines": _read_all(lines)}
            rows.append(row)
            print(f"{row['size']:>10s}  {name:28s} {med:7.3f} s/frame  x{row['speedup_vs_defaults']:<5} "
                  f"read all: {row['read_all_lines']}")
    return rows


def bench_embedder(threads):
    from vidsearch.ocr.sentence import SentenceEmbedder

    t = time.perf_counter()
    emb = SentenceEmbedder(intra_op_threads=threads).load()
    load_s = time.perf_counter() - t
    emb.encode(["warm up"])
    ts = []
    for _ in range(30):
        t = time.perf_counter()
        emb.encode(["exit sign"])
        ts.append(time.perf_counter() - t)
    lines = (TEXTS + ["2024-05-01 12:34:56", "NO PARKING TOW AWAY ZONE"]) * 200
    t = time.perf_counter()
    emb.encode(lines)
    batch_s = time.perf_counter() - t
    row = {"load_s": round(load_s, 3), "one_sentence_ms": round(float(np.median(ts)) * 1000, 2),
           "lines_per_s_batched": round(len(lines) / batch_s, 1)}
    print(f"sentence embedder: start {row['load_s']} s, one sentence {row['one_sentence_ms']} ms, "
          f"{row['lines_per_s_batched']} lines/s batched (first start is 1.0x; no other baseline)")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="640x360,1280x720")
    ap.add_argument("--reads", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ONNX Runtime default)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    out = {"ocr": bench_ocr(sizes, a.reads, a.threads or None), "embedder": bench_embedder(a.threads or None)}
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
