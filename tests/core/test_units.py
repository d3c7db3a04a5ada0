"""Pure modules: planning, preprocessing, range merging, the model contract, the tokenizer."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vidsearch.errors import ModelError
from vidsearch.models.contract import load_model_info
from vidsearch.core.plan import ChunkSpec, Sampling, is_video_name, plan_chunks
from vidsearch.core.preprocess import center_crop, resize_dims, to_tensor
from vidsearch.core.ranges import adaptive_threshold, hysteresis_runs, merge_runs, rank, runs_above, smooth, video_ranges


def test_plan_chunks_covers_duration_without_overlap():
    assert plan_chunks(150, 60) == [(0.0, 60.0), (60.0, 120.0), (120.0, 150.0)]
    # a tail shorter than a quarter chunk joins the previous chunk
    assert plan_chunks(130, 60) == [(0.0, 60.0), (60.0, 130.0)]
    assert plan_chunks(0, 60) == []
    assert plan_chunks(10, 60) == [(0.0, 10.0)]
    with pytest.raises(ValueError):
        plan_chunks(10, 0)


def test_sampling_grid_is_anchored_at_zero():
    s = Sampling("fps", 1.0)
    assert s.timestamps(0, 3) == [0.0, 1.0, 2.0]
    assert s.timestamps(59.5, 62) == [60.0, 61.0]
    assert Sampling("fps", 2).timestamps(1, 2) == [1.0, 1.5]
    assert Sampling.parse(s.key) == s and Sampling.parse("keyframes").mode == "keyframes"
    with pytest.raises(ValueError):
        Sampling("fps", 0)


def test_chunk_id_is_stable_and_depends_on_settings():
    a = ChunkSpec("v" * 64, "/x.mp4", 0, 60, "fps=1", "m@1")
    assert a.chunk_id == ChunkSpec.from_dict(json.loads(json.dumps(a.to_dict()))).chunk_id
    assert a.chunk_id != ChunkSpec("v" * 64, "/x.mp4", 0, 60, "keyframes", "m@1").chunk_id
    assert a.chunk_id != ChunkSpec("v" * 64, "/x.mp4", 0, 60, "fps=1", "m@2").chunk_id
    # the path is not part of the identity: a moved file keeps its chunks
    assert a.chunk_id == ChunkSpec("v" * 64, "/moved.mp4", 0, 60, "fps=1", "m@1").chunk_id


def test_progress_counts_each_second_of_video_once_with_ocr():
    from vidsearch.ingest.plan import IngestPlan
    from vidsearch.ocr.channel import OCR_CHANNEL, plan_ocr
    from vidsearch.core.plan import plan_video

    vid = "ab" * 32
    image = plan_video(vid, "/a.mp4", 25.0, "m@1", Sampling(), 10)
    ocr = plan_ocr(vid, "/a.mp4", 25.0, 10)
    assert IngestPlan(image, 0, {}, {}, [], 1, []).seconds_todo == pytest.approx(25.0)
    both = IngestPlan(image + ocr, 0, {}, {}, [], 1, [], ["m@1", OCR_CHANNEL])
    assert both.seconds_todo == pytest.approx(25.0)
    # adding --ocr to an indexed archive: only the OCR chunks are left, each stands for its whole range
    only_ocr = IngestPlan(ocr, 0, {}, {}, [], 1, [], [OCR_CHANNEL])
    assert only_ocr.seconds_todo == pytest.approx(25.0) and only_ocr.video_seconds(ocr[0]) == pytest.approx(10.0)
    assert both.video_seconds(ocr[0]) == both.video_seconds(image[0]) == pytest.approx(5.0)


def test_video_names():
    assert is_video_name("a.MP4") and is_video_name("b.mkv") and is_video_name("c.ts")
    assert not is_video_name("notes.txt") and not is_video_name(".hidden.mp4") and not is_video_name("mp4")
    # what cameras, DVD rips, broadcast and recorders write
    assert all(is_video_name(n) for n in ("00001.MTS", "VTS_01_1.VOB", "clip.MXF", "cam.264", "x.h265", "MOV001.MOD"))


def test_preprocess_shapes_and_normalisation():
    assert resize_dims(1920, 1080, 224) == (398, 224)
    assert resize_dims(720, 1280, 224) == (224, 398)
    img = np.zeros((224, 398, 3), np.uint8)
    img[:, 87:311] = 255
    crop = center_crop(img, 224)
    assert crop.shape == (224, 224, 3) and crop.min() == 255
    t = to_tensor([crop, np.zeros_like(crop)], mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert t.shape == (2, 3, 224, 224) and t.dtype == np.float32
    assert np.allclose(t[0], 1.0) and np.allclose(t[1], -1.0)


def test_smooth_handles_irregular_spacing():
    pts = np.array([0.0, 1.0, 2.0, 10.0])
    sm = smooth(pts, np.array([0.0, 3.0, 0.0, 5.0]), 3.0)
    assert np.allclose(sm, [1.5, 1.0, 1.5, 5.0])


def test_runs_merge_and_hysteresis():
    v = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1])
    assert runs_above(v, 1) == [(1, 2), (5, 5), (10, 11)]
    pts = np.arange(len(v), dtype=float)
    assert merge_runs(pts, runs_above(v, 1), max_gap_s=3) == [(1, 5), (10, 11)]
    w = np.array([0.1, 0.5, 0.9, 0.5, 0.1, 0.5, 0.6, 0.5])
    assert hysteresis_runs(w, high=0.8, low=0.4) == [(1, 3)]


def test_video_ranges_exact_scene():
    pts = np.arange(0, 40, 1.0)
    scores = np.where((pts >= 10) & (pts < 18), 0.9, 0.1)
    [r] = video_ranges("v", pts, scores, threshold=0.5, smooth_s=3.0, duration=40.0)
    assert (r.start, r.end) == (10.0, 18.0)
    assert 10 <= r.peak_time < 18 and r.peak_score == pytest.approx(0.9) and r.frames == 8
    # a one-frame dip does not split the range
    scores[13] = 0.1
    assert len(video_ranges("v", pts, scores, threshold=0.5, smooth_s=0.0)) == 1


def test_rank_orders_by_score_then_length():
    a = video_ranges("a", np.arange(5.0), np.array([0, 0.8, 0.8, 0, 0]), 0.5, smooth_s=0)[0]
    b = video_ranges("b", np.arange(5.0), np.array([0, 0.9, 0, 0, 0]), 0.5, smooth_s=0)[0]
    assert [r.video_id for r in rank([a, b])] == ["b", "a"]
    assert rank([a, b], top=1)[0].video_id == "b"


def test_adaptive_threshold():
    s = np.array([0.1] * 90 + [0.3] * 10)
    assert adaptive_threshold(s) == pytest.approx(0.2)
    assert adaptive_threshold(s, min_score=0.25) == pytest.approx(0.25)
    assert adaptive_threshold(np.array([])) == float("inf")


def test_model_errors_name_the_directory_and_the_fix(home, tmp_path, colour):
    with pytest.raises(ModelError, match=r"does not exist.*model export"):
        load_model_info(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"empty is not a model directory"):
        load_model_info(tmp_path / "empty")
    with pytest.raises(ModelError, match="model pull clip-vit-b-32"):
        load_model_info(None)  # no default configured
    info = load_model_info("demo-colours", verify=True)
    assert info.semantics == "colours" and info.model_id.startswith("demo-colours@")
    (info.path / "image.onnx").write_bytes(b"damaged")
    with pytest.raises(ModelError, match="does not match the sha256"):
        load_model_info("demo-colours", verify=True)


def test_tokenizer_matches_clip_conventions():
    from vidsearch.models.tokenizer import clip_bpe

    tok = clip_bpe()
    ids = tok(["a person in a red jacket", "x " * 200])
    assert ids.shape == (2, 77) and ids.dtype == np.int64
    assert ids[0, 0] == 49406 and 49407 in ids[0]  # <start_of_text>, <end_of_text>
    assert ids[1, -1] == 49407  # truncated texts still end with <end_of_text>
    assert tok.encode("red") == [736]


def test_colour_model_knows_only_colours(colour):
    from vidsearch.models.encoder import Encoder

    enc = Encoder(colour)
    t = enc.encode_texts(["a red jacket", "grey", "a dog"])
    assert np.argmax(t[0]) == 0 and np.argmax(t[1]) == 6 and not np.any(t[2])
    px = np.zeros((1, 3, 32, 32), np.float32)
    px[0, 0], px[0, 1], px[0, 2] = 0.9, 0.1, 0.1
    assert float(enc.encode_images(px)[0] @ t[0]) > 0.99


def test_median_is_numpys_without_numpy_ma():
    from vidsearch.core.ranges import median

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 7, 100, 101, 8192):
        for dtype in (np.float32, np.float64):
            a = rng.standard_normal(n).astype(dtype)
            assert median(a) == float(np.median(a))
    assert median(np.array([1.0, np.nan, 2.0])) != median(np.array([1.0, np.nan, 2.0]))  # nan, as numpy
    assert np.isnan(median(np.zeros(0)))
