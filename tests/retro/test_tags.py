"""Tags: the pure rule, the demo archive's ground truth, and the plumbing (incremental, re-tagging, SQL)."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from tests.conftest import run_cli
from vidsearch.core import tagging
from vidsearch.demo.models import COLOURS, install_model, tiny_random_model
from vidsearch.demo.synth import DEMO_ARCHIVE, make_demo_archive, make_video
from vidsearch.retro.tagchannel import DEFAULT_VOCAB, Vocabulary, parse_vocab

COLOUR_VOCAB = "# the demo model's words\n" + "\n".join(COLOURS) + "\n"


# -- the rule (pure) -------------------------------------------------------------------------------
def test_candidates_are_near_the_frames_best_and_above_the_floor():
    s = np.array([[0.30, 0.28, 0.20, 0.10], [0.17, 0.16, 0.10, 0.0], [0.25, 0.25, 0.25, 0.25]], np.float32)
    rows, cols, vals, best = tagging.candidates(s, tagging.Rule(floor=0.18, margin=0.05, top_k=2))
    assert list(zip(rows, cols)) == [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2), (2, 3)]  # ties at the k-th all count
    assert vals[0] == pytest.approx(0.30) and list(best) == [True, False, True, False, False, False]


def test_calibration_asks_a_tag_to_stand_out_from_its_usual_level():
    rng = np.random.default_rng(0)
    n = 2000
    s = np.zeros((n, 3), np.float32)
    s[:, 0] = 0.22 + 0.005 * rng.standard_normal(n)  # "street": the best tag of most frames
    s[:, 1] = 0.20 + 0.005 * rng.standard_normal(n)  # "car": usually close behind, present on 10%
    s[: n // 10, 1] = 0.30
    s[:, 2] = 0.05  # unrelated
    cal = tagging.calibrate(s)
    assert 0.20 < cal.thresholds[1] < 0.23  # above "car"'s usual level, below its present level
    assert cal.thresholds[2] == pytest.approx(tagging.DEFAULT_RULE.floor)
    rows, cols, vals, best = tagging.candidates(s)
    present = (vals >= cal.thresholds[cols]) | best
    car = np.zeros(n, bool)
    car[rows[present & (cols == 1)]] = True
    street = np.zeros(n, bool)
    street[rows[present & (cols == 0)]] = True
    assert car[: n // 10].all() and car[n // 10 :].mean() < 0.01
    assert street[n // 10 :].mean() > 0.99  # the best tag where nothing else is: there, though never unusual
    assert tagging.calibrate(np.zeros((0, 3))).frames == 0


def test_ranges_join_frames_one_missed_frame_apart_and_end_one_step_later():
    pts = np.array([0, 1, 2, 4, 8, 9, 0, 1], float)
    tags = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    sc = np.array([0.3, 0.4, 0.3, 0.3, 0.2, 0.2, 0.5, 0.5])
    out = sorted((r.tag, r.start, r.end, r.frames) for r in tagging.tag_ranges(pts, tags, sc, 1.0, duration=9.5))
    assert out == [(0, 0.0, 5.0, 4), (0, 8.0, 9.5, 2), (1, 0.0, 2.0, 2)]


def test_vocabulary_files_default_replace_and_extend(tmp_path):
    default = parse_vocab(DEFAULT_VOCAB.read_text())
    assert 300 <= len(default) <= 2000 and len(set(default)) == len(default)
    assert {"person", "truck", "dog", "night", "rain", "parking lot"} <= set(default)
    (tmp_path / "a.txt").write_text("# mine\nred\nblue  # inline comment\n\nred\n")
    (tmp_path / "b.txt").write_text("green\nblue\n")
    v = Vocabulary.load(tmp_path / "a.txt", [tmp_path / "b.txt"])
    assert v.tags == ("red", "blue", "green")
    assert Vocabulary.load(add=[tmp_path / "b.txt"]).tags == (*default, "green", "blue")
    assert v.hash != Vocabulary.load(tmp_path / "a.txt").hash


# -- the demo archive: tags and ranges match its ground truth --------------------------------------
@pytest.fixture
def demo_index(home, colour, tmp_path, runner):
    make_demo_archive(tmp_path / "demo", size=(160, 90))
    (tmp_path / "colours.txt").write_text(COLOUR_VOCAB)
    idx = home / "index"
    run_cli(runner, "--index", idx, "ingest", tmp_path / "demo", "-m", "demo-colours", "-q")
    run_cli(runner, "--index", idx, "tags", "build", "--vocab", tmp_path / "colours.txt")
    return idx


def _tags_json(runner, idx, *args):
    return json.loads(run_cli(runner, "--index", idx, "tags", "--json", *args).stdout)


def test_demo_archive_tags_match_ground_truth(demo_index, runner):
    out = _tags_json(runner, demo_index)
    got = {(t["tag"], r["path"].split("/demo/")[1], r["start"], r["end"]) for t in out["tags"] for r in t["ranges"]}
    truth = {(c, rel, s, e) for rel, (_, scenes) in DEMO_ARCHIVE.items() for s, e, c in scenes}
    assert truth <= got
    coloured = {g for g in got if g[0] != "gray"}
    assert coloured == truth  # no colour where there is none
    gray_s = sum(e - s for tag, _, s, e in got if tag == "gray")
    assert gray_s == pytest.approx(sum(d - sum(e - s for s, e, _ in sc) for d, sc in DEMO_ARCHIVE.values()))
    order = [t["tag"] for t in out["tags"]]
    assert order[0] == "gray" and order[1] == "red"  # ranked by total time: red is in two videos
    red = out["tags"][1]
    assert red["videos"] == 2 and red["seconds"] == pytest.approx(27.0)


def test_tag_filters_and_formats(demo_index, runner):
    red = _tags_json(runner, demo_index, "--tag", "RED")
    assert [t["tag"] for t in red["tags"]] == ["red"]
    street = _tags_json(runner, demo_index, "--video", "cam-street/*")
    assert {t["tag"] for t in street["tags"]} == {"gray", "green", "orange"}
    # recorded time: cam-lobby 09:00 file, yellow at 5-12 s, red at 40-52 s
    win = _tags_json(runner, demo_index, "--after", "2026-11-02T09:00:06", "--before", "2026-11-02T09:00:45")
    yellow = next(t for t in win["tags"] if t["tag"] == "yellow")
    assert [(r["start"], r["end"]) for r in yellow["ranges"]] == [(6.0, 12.0)]
    assert [(r["start"], r["end"]) for t in win["tags"] if t["tag"] == "red" for r in t["ranges"]] == [(40.0, 45.0)]
    rows = list(csv.DictReader(io.StringIO(run_cli(runner, "--index", demo_index, "tags", "--csv").output)))
    assert {r["tag"] for r in rows} == {"gray", "red", "blue", "yellow", "green", "orange"}
    table = run_cli(runner, "--index", demo_index, "tags", "--tag", "orange").output
    assert "0:01:35.0" in table and "0:01:50.0" in table


def test_sql_view_groups_seconds_per_tag_per_camera_per_hour(demo_index, runner):
    sql = ("SELECT regexp_extract(path, '([^/]+)/[^/]+$', 1) AS camera, date_trunc('hour', recorded_at) AS hour, "
           "tag, sum(end_s - start_s) AS seconds FROM tags GROUP BY ALL ORDER BY camera, hour, tag")
    rows = json.loads(run_cli(runner, "--index", demo_index, "sql", sql, "--json").stdout)
    by = {(r["camera"], str(r["hour"])[:13], r["tag"]): r["seconds"] for r in rows}
    assert by[("cam-lobby", "2026-11-02 08", "red")] == pytest.approx(15.0)
    assert by[("cam-lobby", "2026-11-02 09", "red")] == pytest.approx(12.0)
    assert by[("cam-street", "2026-11-02 08", "orange")] == pytest.approx(15.0)


# -- plumbing with a random-weight model ----------------------------------------------------------
def test_ingest_tags_incremental_model_change_and_sql(home, tiny, archive, runner):
    idx = home / "index"
    out = run_cli(runner, "--index", idx, "ingest", archive, "-m", "tiny-random", "--tags", "--chunk", "10", "-q", "--json").stdout
    rep = json.loads(out)
    assert rep["tag_frames"] == rep["frames"] > 0 and rep["chunks_failed"] == 0
    again = json.loads(run_cli(runner, "--index", idx, "tags", "build", "--json").stdout)
    assert again["chunks_tagged"] == 0 and again["chunks_skipped"] > 0 and not again["recalibrated"]
    assert again["tags"] == len(parse_vocab(DEFAULT_VOCAB.read_text()))  # ingest --tags used the built-in vocabulary
    first = again["channel"]
    rows = json.loads(run_cli(runner, "--index", idx, "sql", "SELECT tag, sum(end_s - start_s) AS s FROM tags GROUP BY 1", "--json").stdout)
    assert rows and all(r["s"] > 0 for r in rows)
    listed = _tags_json(runner, idx)
    assert listed["channel"] == first and listed["tags"]

    # a new video: only its chunks are tagged
    make_video(archive / "cam-c" / "late.mp4", 12.0, [(2.0, 6.0, "red")], seed=7)
    rep2 = json.loads(run_cli(runner, "--index", idx, "ingest", archive, "-m", "tiny-random", "--tags", "--chunk", "10", "-q", "--json").stdout)
    assert rep2["chunks_done"] == 2 and rep2["tag_frames"] == 12  # one image chunk (0-12 s) and its tags

    # another model: everything is tagged again, under a new channel
    install_model(lambda d, name: tiny_random_model(d, seed=1, name=name), "tiny-two", home / "models")
    run_cli(runner, "--index", idx, "ingest", archive, "-m", "tiny-two", "--chunk", "10", "-q")
    other = json.loads(run_cli(runner, "--index", idx, "tags", "build", "-m", "tiny-two", "--json").stdout)
    assert other["channel"] != first and other["chunks_tagged"] == other["chunks_skipped"] + other["chunks_tagged"] > 0
    assert _tags_json(runner, idx)["channel"] == other["channel"]
    status = json.loads(run_cli(runner, "--index", idx, "status", "--json").stdout)
    assert status["tag_frames"] > 0


def test_vocabulary_change_retags_and_rechunked_videos_are_retagged(home, tiny, archive, runner, tmp_path):
    idx = home / "index"
    run_cli(runner, "--index", idx, "ingest", archive, "-m", "tiny-random", "--chunk", "10", "-q")
    (tmp_path / "v.txt").write_text("red\nblue\ngreen\n")
    a = json.loads(run_cli(runner, "--index", idx, "tags", "build", "--vocab", tmp_path / "v.txt", "--json").stdout)
    (tmp_path / "w.txt").write_text("yellow\n")
    b = json.loads(run_cli(runner, "--index", idx, "tags", "build", "--vocab", tmp_path / "v.txt",
                           "--vocab-add", tmp_path / "w.txt", "--json").stdout)
    assert b["channel"] != a["channel"] and b["chunks_tagged"] == a["chunks_tagged"] > 0 and b["tags"] == 4
    same = json.loads(run_cli(runner, "--index", idx, "tags", "build", "--json").stdout)  # keeps the index's vocabulary
    assert same["channel"] == b["channel"] and same["chunks_tagged"] == 0
    # the image chunks re-done with other settings: the old chunks' tags go, the new chunks are tagged
    run_cli(runner, "--index", idx, "ingest", archive, "-m", "tiny-random", "--chunk", "15", "-q")
    c = json.loads(run_cli(runner, "--index", idx, "tags", "build", "--json").stdout)
    assert c["chunks_removed"] > 0 and c["chunks_tagged"] > 0 and c["recalibrated"]


def test_tags_before_any_build_says_what_to_run(home, tiny, archive, runner):
    idx = home / "index"
    res = run_cli(runner, "--index", idx, "tags", ok=False)
    assert res.exit_code != 0 and "no index" in res.output
    run_cli(runner, "--index", idx, "ingest", archive, "-m", "tiny-random", "-q")
    res = run_cli(runner, "--index", idx, "tags", ok=False)
    assert res.exit_code != 0 and "vidsearch tags build" in res.output and len(res.output.strip().splitlines()) == 1
    rows = json.loads(run_cli(runner, "--index", idx, "sql", "SELECT count(*) AS n FROM tags", "--json").stdout)
    assert rows == [{"n": 0}]  # the view exists, empty


@pytest.mark.web
def test_api_tags_and_whats_here_for_one_video(demo_index):
    from fastapi.testclient import TestClient

    from vidsearch.web.app import create_app

    app = create_app(demo_index)
    try:
        c = TestClient(app, base_url="http://127.0.0.1")
        everything = c.get("/api/tags").json()
        assert everything["tags"][0]["tag"] == "gray"
        vid = next(r["video_id"] for t in everything["tags"] if t["tag"] == "orange" for r in t["ranges"])
        here = c.get("/api/tags", params={"video_id": vid}).json()
        assert [(t["tag"], t["seconds"]) for t in here["tags"]] == [("gray", 90.0), ("green", 15.0), ("orange", 15.0)]
        assert "whatsHere" in c.get("/static/app.js").text
    finally:
        app.state.warm.close()
