"""Zero-shot classification: templates, prompt ensembling, softmax at logit scale 100, label timelines."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from vidsearch.retro.classify import (
    DEFAULT_TEMPLATES,
    UNCERTAIN,
    check_templates,
    frame_probs,
    label_timeline,
    label_vectors,
    parse_labels,
    prompts_for,
)
from vidsearch.models.encoder import Encoder
from vidsearch.errors import UserError


# -- pure ------------------------------------------------------------------------------------
def test_labels_and_templates():
    assert parse_labels("delivery, person,car,, empty street") == ["delivery", "person", "car", "empty street"]
    assert parse_labels(["a,b", "c", "a"]) == ["a", "b", "c"]
    with pytest.raises(UserError, match="at least two"):
        parse_labels("car")
    with pytest.raises(UserError, match="reserved"):
        parse_labels("car,uncertain")
    with pytest.raises(UserError, match="exactly once"):
        check_templates(["a photo"])
    assert prompts_for("car", ["a photo of a {}.", "{} at night"]) == ["a photo of a car.", "car at night"]
    assert all(t.count("{}") == 1 for t in DEFAULT_TEMPLATES) and len(DEFAULT_TEMPLATES) == 8


def test_timeline_runs_uncertain_and_min_segment():
    pts = np.arange(12.0)
    labels = ["car", "person", "street"]
    probs = np.zeros((12, 3))
    probs[:4] = [0.9, 0.05, 0.05]
    probs[4:5] = [0.1, 0.8, 0.1]  # a one-frame flicker
    probs[5:8] = [0.9, 0.05, 0.05]
    probs[8:10] = [0.4, 0.35, 0.25]  # unsure
    probs[10:] = [0.0, 0.1, 0.9]
    tl = label_timeline("v", pts, probs, labels, smooth_s=0, duration=11.5)
    assert [(s.label, s.start, s.end, s.frames) for s in tl.segments] == [
        ("car", 0.0, 4.0, 4), ("person", 4.0, 5.0, 1), ("car", 5.0, 10.0, 5), ("street", 10.0, 11.5, 2)]
    assert tl.totals() == {"car": 9.0, "person": 1.0, "street": 1.5}
    tl = label_timeline("v", pts, probs, labels, smooth_s=0, min_prob=0.5, min_segment_s=2.0)
    assert [(s.label, s.start, s.end) for s in tl.segments] == [("car", 0.0, 8.0), (UNCERTAIN, 8.0, 10.0), ("street", 10.0, 12.0)]
    assert tl.segments[0].mean_prob == pytest.approx((0.9 * 7 + 0.1) / 8)  # the flicker frame's car probability
    assert label_timeline("v", np.zeros(0), np.zeros((0, 3)), labels).segments == []


def test_prompt_ensembling_averages_normalised_template_embeddings(tmp_path):
    from vidsearch.demo.models import colour_model

    enc = Encoder(colour_model(tmp_path / "m"))
    # "dark" is a colour word (black) for the demo model: the second template pulls every label towards black
    templates = ["a photo of a {}.", "a dark photo of a {}."]
    mat, unknown = label_vectors(enc, ["red", "blue", "person"], templates)
    red, black = np.eye(10)[0], np.eye(10)[5]
    expected = red + (red + black) / np.sqrt(2)  # mean of the two unit prompt embeddings, re-normalised
    np.testing.assert_allclose(mat[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert np.linalg.norm(mat[1]) == pytest.approx(1.0)
    np.testing.assert_allclose(mat[2], black, atol=1e-6)  # "person" is unknown; only the template's "dark" remains
    assert unknown == []
    mat1, unknown = label_vectors(enc, ["red", "person"], ["a photo of a {}."])
    assert unknown == ["person"] and not mat1[1].any()
    np.testing.assert_allclose(mat1[0], red, atol=1e-6)
    # frame probabilities: a pure red embedding is "red" with near certainty
    p = frame_probs(np.array([red], dtype=np.float32), mat)
    assert p.shape == (1, 3) and p[0, 0] > 0.999 and p[0].sum() == pytest.approx(1.0)


# -- end to end --------------------------------------------------------------------------------
def ingest(runner, archive):
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")


def spans(result, name):
    v = next(v for v in result["videos"] if Path(v["path"]).name == name)
    return [(s["label"], s["start"], s["end"]) for s in v["segments"]]


def test_classify_label_timeline_per_video(home, colour, archive, runner):
    ingest(runner, archive)
    out = json.loads(run_cli(runner, "classify", "--labels", "red,blue,gray", "--json").stdout)
    assert out["labels"] == ["red", "blue", "gray"] and out["templates"] == list(DEFAULT_TEMPLATES)
    assert spans(out, "morning.mp4") == [("gray", 0.0, 10.0), ("red", 10.0, 18.0), ("gray", 18.0, 30.0),
                                         ("blue", 30.0, 34.0), ("gray", 34.0, 40.0)]
    assert spans(out, "noon.mp4") == [("gray", 0.0, 5.0), ("blue", 5.0, 9.0), ("gray", 9.0, 20.0),
                                      ("red", 20.0, 26.0), ("gray", 26.0, 30.0)]
    assert out["totals"] == {"gray": 73.0, "red": 14.0, "blue": 8.0}  # evening's green is closest to gray here
    assert out["frames_scanned"] == 95
    # without a label for the background, it is "uncertain" (two equally wrong labels: p = 0.5 each)
    out = json.loads(run_cli(runner, "classify", "--labels", "red,blue", "--min-prob", "0.9", "--smooth", "0", "--video", "*morning*",
                             "--json").stdout)
    assert spans(out, "morning.mp4") == [(UNCERTAIN, 0.0, 10.0), ("red", 10.0, 18.0), (UNCERTAIN, 18.0, 30.0),
                                         ("blue", 30.0, 34.0), (UNCERTAIN, 34.0, 40.0)]
    # CSV, custom templates, and a label the model cannot embed
    res = run_cli(runner, "classify", "--labels", "green,gray", "--labels", "person", "--template", "a {} scene",
                  "--video", "*evening*", "--csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [(r["label"], r["start"], r["end"]) for r in rows] == [("gray", "0.0", "12.0"), ("green", "12.0", "20.0"),
                                                                 ("gray", "20.0", "25.0")]
    assert "cannot embed person" in res.stderr
    table = run_cli(runner, "classify", "--labels", "red,blue,gray", "--video", "*noon*").stdout
    assert "0:00:20.0" in table and "red" in table
    bad = run_cli(runner, "classify", "--labels", "cat,dog", ok=False)
    assert bad.exit_code != 0 and "cannot embed any" in bad.output
