"""Motion gating does not change the events: a gated stream (embed only what changed, reuse the
rest) gives the same events as embedding every sampled frame, on CCTV-like footage."""
from __future__ import annotations

import numpy as np

from vidsearch.core import motion as M
from vidsearch.core.plan import Sampling
from vidsearch.core.preprocess import center_crop, to_tensor
from vidsearch.demo.cctv import make_cctv
from vidsearch.media.video import iter_frames
from vidsearch.models.encoder import Encoder
from vidsearch.retro.events import thresholds, video_events


def _events(pts, emb, q, duration):
    scores = emb @ q
    high, low = thresholds(scores)
    return [(e.start, e.end) for e in video_events("v", pts, scores, high, low, duration=duration).events]


def test_gated_events_match_ungated_within_a_second(colour, tmp_path):
    visits = [(30.0, 45.0), (80.0, 92.0), (140.0, 150.0)]
    f = make_cctv(tmp_path / "bay.mp4", 180.0, (320, 180), fps=5, subject=visits, drift=0.2, flicker=0.03,
                  figure=0.6, seed=5)  # near the camera: the colours-only model sees it
    size = colour.image_size
    frames = [(t, center_crop(img, size)) for t, img in iter_frames(f.path, 0, f.duration, Sampling("fps", 1.0), size)]
    pts = np.array([t for t, _ in frames])
    enc = Encoder(colour, providers="cpu")
    every = enc.encode_images(to_tensor([c for _, c in frames], colour.mean, colour.std))
    flags = []
    for start in (0.0, 60.0, 120.0):  # per 60 s chunk, a fresh gate
        gate = M.MotionGate(max_reuse_s=60.0)
        flags += [gate.decide(t, c) for t, c in frames if start <= t < start + 60.0]
    kept = enc.encode_images(to_tensor([c for (_, c), e in zip(frames, flags) if e], colour.mean, colour.std))
    gated = M.expand(kept, flags)
    assert sum(flags) < 0.35 * len(flags)
    q = enc.encode_texts(["red"])[0]
    ungated_ev, gated_ev = _events(pts, every, q, f.duration), _events(pts, gated, q, f.duration)
    assert len(ungated_ev) == len(gated_ev) == len(visits)
    for (a0, a1), (b0, b1), (v0, v1) in zip(ungated_ev, gated_ev, visits):
        assert abs(a0 - b0) <= 1.0 and abs(a1 - b1) <= 1.0
        assert abs(b0 - v0) <= 2.0 and abs(b1 - v1) <= 2.0  # and they are the subject's visits
