"""Export trusts nothing it is given: the model's files are hashed at export time, and a result
set is checked against schemas/results.schema.json and the index before anything is written."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from vidsearch.evidence.schema import SCHEMA_FILE, schema_errors
from vidsearch.models.contract import model_id_for, sha256_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hits(home, colour, archive, runner, tmp_path) -> Path:
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")
    path = tmp_path / "hits.json"
    path.write_text(run_cli(runner, "query", "red", "--json").stdout)
    return path


def _one_line_failure(res, out: Path) -> str:
    assert res.exit_code != 0
    text = res.output.strip()
    assert "\n" not in text and "Traceback" not in text, res.output
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.partial-*"))
    return text


def test_manifest_hashes_the_model_files_at_export_time(hits, home, colour, runner, tmp_path):
    out = tmp_path / "ok"
    run_cli(runner, "export", hits, "--out", out, "--no-clips")
    m = json.loads((out / "manifest.json").read_text())["model"]
    now = {f: sha256_file(colour.path / f) for f in colour.files}
    assert m["files"] == now and m["files_match_model_id"] is True
    assert model_id_for(m["name"], m["files"]) == m["model_id"] == colour.model_id
    # one weight changed: the export stops, naming the file and both hashes
    image = colour.path / "image.onnx"
    data = bytearray(image.read_bytes())
    data[-5] ^= 0x01
    image.write_bytes(bytes(data))
    out = tmp_path / "tampered"
    text = _one_line_failure(run_cli(runner, "export", hits, "--out", out, ok=False), out)
    assert str(image) in text and sha256_file(image) in text and colour.files["image.onnx"] in text
    # exported anyway: the manifest says what the files are now, and that they do not match
    res = run_cli(runner, "export", hits, "--out", out, "--no-clips", "--allow-mismatch")
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["files"]["image.onnx"] == sha256_file(image) != colour.files["image.onnx"]
    assert m["model"]["files_match_model_id"] is False
    assert any("MODEL FILES DO NOT MATCH" in w for w in m["warnings"]) and "MODEL FILES DO NOT MATCH" in res.stderr
    assert not (out / "scores.csv").exists()  # the damaged model scored nothing


def test_model_not_installed_is_not_claimed_to_match(hits, colour, runner, tmp_path):
    shutil.rmtree(colour.path)
    out = tmp_path / "ev"
    run_cli(runner, "export", hits, "--out", out, "--no-clips")
    m = json.loads((out / "manifest.json").read_text())["model"]
    assert m["files"] == {} and m["files_match_model_id"] is None and m["recorded_files"] == colour.files
    assert any("not installed here" in w for w in json.loads((out / "manifest.json").read_text())["warnings"])


def _crafted(hits: Path, tmp_path: Path, name: str, change) -> Path:
    data = json.loads(hits.read_text())
    change(data)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))  # NaN is written as NaN, as a hand-made file could hold it
    return path


def _set(key, value, rank=0):
    return lambda d: d["ranges"][rank].__setitem__(key, value)


CRAFTED = {
    "huge start": (_set("start", 1e18), "ranges[0].start: 1e+18 is above"),
    "text start": (_set("start", "abc"), 'ranges[0].start: "abc" is not number'),
    "negative start": (_set("start", -5.0), "ranges[0].start: -5.0 is below 0"),
    "NaN end": (_set("end", math.nan), "ranges[0].end: NaN is not number"),
    "infinite peak": (_set("peak_time", math.inf), "ranges[0].peak_time: Infinity is not number"),
    "reversed": (lambda d: d["ranges"][0].update(start=d["ranges"][0]["end"], end=d["ranges"][0]["start"]), "range 1 is not ordered"),
    "peak outside": (lambda d: d["ranges"][0].update(peak_time=d["ranges"][0]["end"] + 1), "range 1 is not ordered"),
    "beyond the video": (lambda d: d["ranges"][0].update(end=500.0), "beyond the end of its video"),
    "video_id with ../": (_set("video_id", "../../etc/passwd"), "ranges[0].video_id"),
    "video_id unknown": (_set("video_id", "ab" * 32), "is not in this index"),
    "model id malformed": (lambda d: d.update(model_id="../x"), "model_id"),
    "model id unknown": (lambda d: d.update(model_id="demo-colours@" + "0" * 12), "is neither in the index"),
    "no ranges": (lambda d: d.pop("ranges"), "not a result set"),
    "ranges not a list": (lambda d: d.update(ranges={"a": 1}), "ranges: "),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_results_are_refused_in_one_line(case, hits, runner, tmp_path):
    change, expected = CRAFTED[case]
    path = _crafted(hits, tmp_path, case.replace(" ", "_").replace("/", ""), change)
    out = tmp_path / "new" / "evidence"
    text = _one_line_failure(run_cli(runner, "export", path, "--out", out, ok=False), out)
    assert expected in text, text
    assert not (tmp_path / "new").exists()


def test_schema_is_published_and_valid_results_pass(hits, runner):
    assert (ROOT / "schemas" / "results.schema.json").read_bytes() == SCHEMA_FILE.read_bytes()
    assert schema_errors(json.loads(hits.read_text())) == []
    assert schema_errors(json.loads(run_cli(runner, "events", "red", "--json").stdout)) == []
    assert schema_errors({"model_id": "m@" + "0" * 12, "ranges": [{"video_id": "0" * 64, "start": True, "end": 1, "peak_time": 0}]}) \
        == ["ranges[0].start: true is not number"]


def test_failure_while_writing_leaves_nothing(hits, runner, tmp_path, monkeypatch):
    import vidsearch.evidence.export as export

    def broken(*a, **k):
        raise OSError(28, "No space left on device", "report.html")

    monkeypatch.setattr(export, "render_report", broken)
    out = tmp_path / "deep" / "ev"
    res = run_cli(runner, "export", hits, "--out", out, "--no-clips", ok=False)
    assert "no space left" in _one_line_failure(res, out).lower() and not (tmp_path / "deep").exists()
