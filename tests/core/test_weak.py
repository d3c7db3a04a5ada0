"""The weak-result rule (core.ranges.mark_weak) on CLIP-like cosine scores and on demo-model scores."""
from __future__ import annotations

import numpy as np

from vidsearch.core.ranges import TimeRange, mark_weak


def _range(vid: str, peak: float) -> TimeRange:
    return TimeRange(vid, 0.0, 1.0, 0.0, peak, peak, 1)


def _weak(peak: float, all_scores, per_video=None, vid="v") -> bool:
    r = _range(vid, peak)
    mark_weak([r], np.asarray(all_scores), per_video if per_video is not None else {vid: np.asarray(all_scores)})
    return r.weak


def test_clip_like_background_alone_is_weak_and_a_real_hit_is_not():
    rng = np.random.default_rng(0)
    background = rng.normal(0.21, 0.012, 200_000)  # a prompt that is absent: CLIP cosines ~0.17-0.26
    assert _weak(float(background.max()), background)  # the tail of 200k frames is not a hit
    hit = np.concatenate([background, rng.normal(0.30, 0.008, 300)])  # something really there
    assert not _weak(float(hit.max()), hit)
    tight = rng.normal(0.24, 0.004, 50_000)  # one static camera: small spread, small lift
    assert _weak(float(tight.max()), tight) and not _weak(0.29, np.append(tight, 0.29))


def test_several_cameras_each_judged_against_its_own_frames_too():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.18, 0.01, 50_000), rng.normal(0.25, 0.01, 50_000)  # two backgrounds
    both = np.concatenate([a, b])
    assert _weak(float(b.max()), both, {"b": b}, vid="b")  # camera b's tail: nothing stands out anywhere
    assert not _weak(0.33, both, {"b": np.append(b, 0.33)}, vid="b")  # a real hit in camera b


def test_demo_model_scores():
    # colour model: almost every frame ~0.002 for "red", the red scene ~0.998; for an absent colour
    # ("purple") every frame is within 0.01 of the best
    red = np.r_[np.full(250, 0.002), np.full(35, 0.998)]
    purple = np.r_[np.full(150, 0.117), np.full(100, 0.105), np.full(35, 0.0)]
    assert not _weak(0.998, red) and _weak(0.117, purple)
    assert _weak(0.0044, np.r_[np.full(280, 0.0004), np.full(5, 0.0044)])  # a tiny lift is never a hit
    assert _weak(0.5, np.full(10, 0.5))  # everything scores the same


def test_not_judged_ranges_leave_json_unchanged():
    r = _range("v", 0.5)
    assert "weak" not in r.to_dict()
    mark_weak([r], np.zeros(10), {})
    assert r.to_dict()["weak"] is False
