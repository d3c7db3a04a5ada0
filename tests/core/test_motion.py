"""The "did the picture change" detector and the motion gate, on real generated CCTV footage."""
from __future__ import annotations

import numpy as np
import pytest

from vidsearch.core import motion as M
from vidsearch.core.plan import Sampling
from vidsearch.core.preprocess import center_crop
from vidsearch.demo.cctv import make_cctv, make_moving
from vidsearch.media.video import iter_frames

VISITS = [(40.0, 52.0), (100.0, 106.0)]


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """Static noisy H.264 scene, lighting drift, flicker, a +20 % brightness step at 75 s, a red figure twice."""
    root = tmp_path_factory.mktemp("cctv")
    return make_cctv(root / "lobby.mp4", 130.0, (320, 180), fps=5, subject=VISITS, drift=0.25, flicker=0.04,
                     steps=[(75.0, 1.2)], seed=3)


def _crops(footage, size=224, start=0.0, end=None, fps=1.0):
    """What ingest would embed: 1 fps, short side resized to the model size, centre crop."""
    end = footage.duration if end is None else end
    return [(t, center_crop(img, size)) for t, img in iter_frames(footage.path, start, end, Sampling("fps", fps), size)]


def test_thumbnail_any_size_area_average():
    img = np.zeros((1080, 1920, 3), np.uint8)
    img[:, 960:] = 255
    th = M.thumbnail(img)
    assert th.shape == (36, 64, 3) and th.dtype == np.float32
    assert th[:, :30].max() == 0.0 and th[:, 34:].min() == 1.0  # halves kept; only the seam is blurred
    assert M.thumbnail(np.zeros((32, 32, 3), np.uint8)).shape == (32, 32, 3)  # small frames: a cell per pixel
    assert M.thumbnail(np.zeros((400, 224, 3), np.uint8)).shape == (57, 32, 3)  # portrait: 7 x 7 px cells
    assert M.thumbnail(np.full((10, 12), 51, np.uint8))[0, 0, 2] == pytest.approx(0.2)  # grey input
    with pytest.raises(ValueError):
        M.thumbnail(np.zeros((0, 5, 3), np.uint8))


def test_compare_gain_colour_and_noise():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.7, (36, 64, 3)).astype(np.float32)
    noisy = base + rng.normal(0, 0.01, base.shape).astype(np.float32)
    assert not M.compare(base, noisy).changed
    c = M.compare(base, base * 1.3)  # brightness step: normalised away
    assert not c.changed and c.gain == pytest.approx(1.3, rel=1e-3) and c.area == 0.0
    assert M.compare(base, base * 1.6).changed  # beyond max_gain: lights on
    moved = base.copy()
    moved[10:14, 20:23] = (0.9, 0.1, 0.1)  # 12 cells (0.5 %) turn red
    assert M.compare(base, moved).changed
    grey = np.full((36, 64, 3), 90 / 255, np.float32)
    red_same_luma = np.broadcast_to(np.array([230, 25, 25], np.float32) / 255, grey.shape)
    assert M.compare(grey, red_same_luma, M.CUT).changed  # colour counts, not only luma
    assert M.compare(base, base[:10]).changed and M.changed(None, base)


def test_static_footage_is_no_change_and_the_subject_is(footage):
    """Against the frame embedded at 0 s: drift, flicker, the brightness step and compression
    never count; the figure does, every second it is there."""
    frames = _crops(footage)
    ref = M.thumbnail(frames[0][1])
    verdicts = [(t, M.compare(ref, M.thumbnail(img))) for t, img in frames[1:]]
    quiet = [c for t, c in verdicts if not footage.subject_at(t)]
    there = [c for t, c in verdicts if footage.subject_at(t)]
    assert len(there) == 18 and all(c.changed for c in there)
    assert not any(c.changed for c in quiet)
    assert max(c.area for c in quiet) < M.GATE.min_area / 2
    assert min(c.area for c in there) > 5 * M.GATE.min_area
    assert min(c.gain for c in quiet) < 0.85 and max(c.gain for c in quiet) > 1.15  # the drift and step were there


def test_gate_embeds_changes_and_once_per_period(footage):
    frames = _crops(footage)
    gate = M.MotionGate(max_reuse_s=30.0)
    embedded = [t for t, img in frames if gate.decide(t, img)]
    periods = [0.0, 30.0, 60.0, 90.0, 120.0]
    entries = {40.0, 52.0, 100.0, 106.0}  # the figure comes in and leaves
    assert set(periods) | entries <= set(embedded)
    assert set(embedded) - set(periods) <= {t for t, _ in frames if footage.subject_at(t)} | entries
    assert 0.05 < gate.fraction_embedded < 0.25
    assert gate.embedded + gate.reused == len(frames)
    # a gap between two embeddings is never longer than a period plus one sample
    assert max(np.diff(embedded)) <= 30.0 + 1.0


def test_chunks_on_period_boundaries_decide_like_one_pass(footage):
    one = [(t, e) for t, _, e in M.gate_frames(_crops(footage), M.MotionGate(max_reuse_s=30.0))]
    chunked = []
    for start in (0.0, 60.0, 120.0):  # 60 s chunks, a fresh gate each (as a worker would)
        gate = M.MotionGate(max_reuse_s=30.0)
        chunked += [(t, e) for t, _, e in M.gate_frames(_crops(footage, start=start, end=start + 60.0), gate)]
    assert chunked == one


def test_everything_moving_is_always_embedded(tmp_path):
    f = make_moving(tmp_path / "pan.mp4", 30.0, (320, 180), fps=5, subject=[])
    gate = M.MotionGate()
    assert all(gate.decide(t, img) for t, img in _crops(f))


def test_gate_validation_and_reuse_sources():
    with pytest.raises(ValueError):
        M.MotionGate(max_reuse_s=0)
    assert M.reuse_sources([True, False, False, True, False]).tolist() == [0, 0, 0, 3, 3]
    assert M.reuse_sources([]).tolist() == []
    with pytest.raises(ValueError):
        M.reuse_sources([False, True])
    emb = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    assert M.expand(emb, [True, False, True, False, False]).tolist() == [[1, 0], [1, 0], [0, 1], [0, 1], [0, 1]]
    assert M.expand(emb[:0], []).shape == (0, 2)
    assert M.expand(emb, [True, False], per=2).tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]  # a frame's region rows
    with pytest.raises(ValueError, match="2 embeddings for 1 embedded frames"):
        M.expand(emb, [True, False])
    gate = M.MotionGate(max_reuse_s=10.0)
    img = np.full((36, 64, 3), 100, np.uint8)
    assert [gate.decide(t, img) for t in (0.0, 5.0, 9.99, 10.0, 19.0)] == [True, False, False, True, False]
    assert gate.last is not None and not gate.last.changed


def test_region_gates_decide_region_by_region():
    """Each region is compared with its own last embedded crop; the rows of a frame then come from
    different frames, region by region (reuse_map)."""
    still = np.full((224, 224, 3), 100, np.uint8)
    moved = still.copy()
    moved[80:140, 80:140] = (200, 30, 30)  # a subject in this region's crop
    gates = M.RegionGates(3, max_reuse_s=60.0)
    seq = [(0.0, [still, still, still]), (1.0, [still, moved, still]), (2.0, [still, moved, moved]),
           (3.0, [still, still, moved]), (60.0, [still, still, moved])]
    mask = np.array([gates.decide(t, crops) for t, crops in seq])
    assert mask.tolist() == [[True, True, True], [False, True, False], [False, False, True], [False, True, False],
                             [True, True, True]]  # a period start embeds every region
    assert gates.settings()["per_region"] is True and "per_region" not in M.RegionGates(1).settings()
    with pytest.raises(ValueError, match="2 crops for 3 regions"):
        gates.decide(61.0, [still, still])
    source, rows = M.reuse_map(mask)
    assert source.tolist() == [[0, 0, 0], [0, 1, 0], [0, 1, 2], [0, 3, 2], [4, 4, 4]]
    emb = np.arange(int(mask.sum()), dtype=np.float32)[:, None]  # the embedded crops, in order: 0..8
    assert M.expand_rows(emb, mask).ravel().tolist() == [0, 1, 2, 0, 3, 2, 0, 3, 4, 0, 5, 4, 6, 7, 8]
    with pytest.raises(ValueError, match="first sampled frame"):
        M.reuse_map(np.array([[True, False]]))
    with pytest.raises(ValueError, match="8 embeddings for 9 embedded rows"):
        M.expand_rows(emb[:8], mask)


def test_cut_params_reproduce_the_ocr_scene_cuts():
    """The OCR channel's cuts (a new shot) with :data:`CUT`: see docs/motion.md."""
    def th(c):
        return M.thumbnail(np.full((36, 64, 3), c, np.uint8))

    grey, red, greyish = th((90, 90, 90)), th((230, 25, 25)), th((95, 92, 88))
    assert M.changed(grey, red, M.CUT) and M.changed(red, greyish, M.CUT)
    assert not M.changed(grey, greyish, M.CUT)
    assert not any(M.changed(th((90,) * 3), th((v,) * 3), M.CUT) for v in (70, 110))  # flicker


def test_a_faint_colour_cast_over_the_whole_picture_counts_for_gating():
    """A 7 % tint towards red (what a whole-frame embedding sees) moves no cell past the threshold,
    but the picture's mean colour; noise and brightness steps move neither. OCR cuts ignore it."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.6, (36, 64, 3)).astype(np.float32)
    tinted = base * 0.93 + 0.07 * np.array([0.9, 0.1, 0.1], np.float32)
    c = M.compare(base, tinted)
    assert c.area < M.GATE.min_area and c.shift > M.GATE.max_shift and c.changed
    assert not M.compare(base, tinted, M.CUT).changed
    noisy = base * 1.2 + rng.normal(0, 0.02, base.shape).astype(np.float32)
    c = M.compare(base, noisy)
    assert not c.changed and c.shift < M.GATE.max_shift / 4
