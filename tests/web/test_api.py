"""The review API in-process (Starlette's TestClient): search, refine, playback, cases, safety."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the web extra: pip install 'vidsearch[web]'")
pytest.importorskip("multipart", reason="needs the web extra (python-multipart)")
from fastapi.testclient import TestClient  # noqa: E402

from webserve import AVI, RED, app_env, demo  # noqa: E402,F401 - fixtures

LOCAL = "http://127.0.0.1"


@pytest.fixture
def make_client(app_env):
    from vidsearch.web.app import create_app

    clients = []

    def make(**kw):
        app = create_app(app_env, **kw)
        c = TestClient(app, base_url=LOCAL, raise_server_exceptions=False)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.app.state.warm.close()


@pytest.fixture
def client(make_client):
    return make_client()


def red(client, **kw) -> dict:
    r = client.post("/api/query", json={"prompts": ["red"], **kw})
    assert r.status_code == 200, r.text
    return r.json()


def test_query_ranges_and_timelines(client):
    out = red(client)
    got = [(Path(r["path"]).relative_to(Path(r["path"]).parents[1]).as_posix(), r["start"], r["end"]) for r in out["ranges"]]
    assert got == RED
    assert all(len(r["id"]) == 16 for r in out["ranges"])
    tl = {t["video_id"]: t for t in out["timelines"]}
    assert set(tl) == {r["video_id"] for r in out["ranges"]}
    first = tl[out["ranges"][0]["video_id"]]
    assert len(first["t"]) == len(first["s"]) == 90 and first["ranges"] == [[20.0, 35.0]]
    peak = first["t"][max(range(90), key=lambda i: first["s"][i])]
    assert 20 <= peak <= 35
    assert out["api_seconds"] < 5


def test_query_filters_and_errors(client):
    out = red(client, video="*0900*")
    assert [r["start"] for r in out["ranges"]] == [40.0]
    out = red(client, negatives=["orange"], after="2026-11-02T08:30:00Z")
    assert [r["start"] for r in out["ranges"]] == [40.0]
    r = client.post("/api/query", json={"prompts": []})
    assert r.status_code == 400 and "empty query" in r.json()["error"]
    r = client.post("/api/query", json={"prompts": ["red"], "after": "yesterday"})
    assert r.status_code == 400 and "\n" not in r.json()["error"]
    r = client.post("/api/query", json={"prompts": ["red"], "model": "no-such-model"})
    assert r.status_code == 400


def test_refine_with_marks_reports_changes(client):
    out = red(client)
    a, b = out["ranges"]
    fb = [{"video_id": b["video_id"], "start": b["start"], "end": b["end"], "relevant": False},
          {"video_id": a["video_id"], "start": a["start"], "end": a["end"], "relevant": True}]
    prev = [{k: r[k] for k in ("video_id", "start", "end")} for r in out["ranges"]]
    ref = red(client, feedback=fb, previous=prev)
    assert ref["feedback_frames"] == {"relevant": 16, "not_relevant": 13}
    assert "refined" in ref["query"]
    ch = ref["changes"]
    assert len(ch["was_rank"]) == len(ref["ranges"])
    assert ref["ranges"][0]["video_id"] == a["video_id"] and ch["was_rank"][0] == 1
    assert all(w is None or 1 <= w <= 2 for w in ch["was_rank"])


def test_rocchio_moves_towards_relevant():
    import numpy as np

    from vidsearch.query.review import compare, rocchio

    q = np.array([1.0, 0.0, 0.0])
    moved = rocchio(q, np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 1.0]]))
    assert np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-6)
    assert moved[1] > 0 > moved[2] and moved[0] > moved[1]
    before = [{"video_id": "v", "start": 0, "end": 10}, {"video_id": "w", "start": 5, "end": 9}]
    after = [{"video_id": "w", "start": 5.5, "end": 9}, {"video_id": "x", "start": 0, "end": 1}]
    assert compare(before, after) == {"was_rank": [2, None], "dropped": [{"video_id": "v", "start": 0, "end": 10, "rank": 1}]}


def test_playback_original_with_range_requests(client):
    vid = red(client)["ranges"][0]["video_id"]
    info = client.get(f"/api/videos/{vid}/info").json()
    assert info["playable"] and info["container"] == "mp4" and info["video_codec"] == "h264" and info["fps"] == 10
    r = client.get(f"/api/videos/{vid}/file", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100 and r.headers["content-range"].startswith("bytes 0-99/")
    jpg = client.get(f"/api/videos/{vid}/frame.jpg", params={"t": 25})
    assert jpg.status_code == 200 and jpg.content[:2] == b"\xff\xd8"


def test_playback_transcodes_what_a_browser_cannot_play(client):
    import av

    out = client.post("/api/query", json={"prompts": ["purple"]}).json()
    (r,) = out["ranges"]
    assert r["path"].endswith(AVI) and (r["start"], r["end"]) == (10.0, 20.0)
    vid = r["video_id"]
    info = client.get(f"/api/videos/{vid}/info").json()
    assert not info["playable"] and info["video_codec"] == "mpeg4"
    assert client.get(f"/api/videos/{vid}/file").status_code == 400
    clip = client.get(f"/api/videos/{vid}/clip", params={"start": 9, "end": 21})
    assert clip.status_code == 200 and clip.headers["x-clip-start"] == "9.000"
    part = client.get(f"/api/videos/{vid}/clip", params={"start": 9, "end": 21}, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    with av.open(io.BytesIO(clip.content)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        assert s.codec_context.name == "h264" and len(frames) == 120
        assert [round(float(f.pts * s.time_base), 3) for f in frames] == [i / 10 for i in range(120)]
        assert [a.codec_context.name for a in c.streams.audio] == ["aac"]  # the source's MP2 sound, as AAC
    assert client.get(f"/api/videos/{vid}/clip", params={"start": 5, "end": 2000}).status_code == 400


@pytest.mark.parametrize("url", [
    "/api/videos/..%2F..%2F..%2Fetc%2Fpasswd/file",
    "/api/videos/../../etc/passwd/info",
    "/api/videos/" + "0" * 64 + "/file",
    "/api/videos/" + "A" * 64 + "/frame.jpg?t=1",
    "/api/videos/%2Fetc%2Fpasswd/clip?start=0&end=1",
    "/cases/case-1/exports/20260101T000000000000Z/..%2F..%2F..%2F..%2Fcatalog.duckdb",
    "/cases/case-1/exports/..%2F..%2F/report.html",
    "/static/..%2F..%2Fweb%2Fapp.py",
    "/static/../app.py",
])
def test_no_path_traversal(client, url):
    r = client.get(url)
    assert r.status_code in (400, 404), (url, r.status_code)
    assert set(r.json()) == {"error"}


def test_case_names_are_not_paths(client):
    for name in ("..", "../x", "a/b", ".hidden", "x" * 80):
        r = client.get(f"/api/cases/{name}")
        assert r.status_code in (400, 404), name


def test_case_keep_note_mark_export(make_client, app_env):
    from vidsearch.evidence.manifest import verify_manifest

    c = make_client()
    out = red(c)
    a, b = out["ranges"]
    for r in (a, b):
        body = {**{k: r[k] for k in ("video_id", "start", "end", "peak_time", "peak_score", "score", "frames")},
                "model_id": out["model_id"], "semantics": out["semantics"], "query": {"label": out["query"]}}
        assert c.post("/api/cases/Harbour 7/ranges", json=body).status_code == 200
    case = c.post("/api/cases/Harbour 7/marks", json={**{k: b[k] for k in ("video_id", "start", "end")},
                                                        "relevant": False, "query": "red"}).json()
    assert case["marks"][0]["verdict"] == "not relevant" and case["marks"][0]["at"]
    rid = case["ranges"][0]["id"]
    assert c.patch(f"/api/cases/Harbour 7/ranges/{rid}", json={"note": "red jacket enters"}).status_code == 200
    c2 = make_client()  # a restart: the case is read back from the index directory
    case = c2.get("/api/cases/Harbour 7").json()
    assert [r["note"] for r in case["ranges"]] == ["red jacket enters", ""]
    assert (app_env / "cases" / "harbour-7.json").is_file()
    assert [x["name"] for x in c2.get("/api/cases").json()["cases"]] == ["Harbour 7"]
    ex = c2.post("/api/cases/Harbour 7/export", json={"clips": True}).json()
    assert ex["ranges"] == 2 and ex["clips"] == 2, ex
    out_dir = app_env / "cases" / "harbour-7" / "exports" / ex["export"]
    assert verify_manifest(out_dir) == []
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["review"]["case"] == "Harbour 7"
    assert [k["note"] for k in manifest["review"]["kept"]] == ["red jacket enters", ""]
    assert all(k["kept_at"] for k in manifest["review"]["kept"])
    assert manifest["review"]["marks"][0]["verdict"] == "not relevant"
    report = c2.get(ex["report_url"])
    assert report.status_code == 200 and "<html" in report.text.lower()
    clip = manifest["ranges"][0]["clip"]["path"]
    assert c2.get(ex["report_url"].replace("report.html", clip)).status_code == 200
    assert c2.delete(f"/api/cases/Harbour 7/ranges/{rid}").json()["ranges"][0]["id"] != rid


def test_keep_refuses_ids_outside_the_index(client):
    body = {"video_id": "f" * 64, "start": 0, "end": 1, "peak_time": 0}
    assert client.post("/api/cases/x/ranges", json=body).status_code == 404


def test_token_required_off_loopback(make_client):
    c = make_client(token="s3cret-token")
    r = c.get("/api/models")
    assert r.status_code == 401 and "token" in r.json()["error"]
    assert c.get("/api/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/models", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    r = c.get("/", params={"token": "s3cret-token"})
    assert r.status_code == 200 and "vidsearch_token" in r.headers.get("set-cookie", "")
    assert c.get("/api/models").status_code == 200  # the cookie the URL set
    c.cookies.clear()
    assert c.get("/api/videos/" + "0" * 64 + "/file").status_code == 401


def test_loopback_refuses_foreign_hosts_and_origins(client):
    assert client.get("/api/models", headers={"Host": "evil.example:8765"}).status_code == 403
    assert client.get("/api/models", headers={"Host": "localhost:8765"}).status_code == 200
    r = client.post("/api/query", json={"prompts": ["red"]}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


def test_errors_are_one_line_json(client, monkeypatch):
    from vidsearch.web import routes_search

    assert client.get("/nope").json() == {"error": "Not Found"}
    r = client.post("/api/query", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and list(r.json()) == ["error"]
    monkeypatch.setattr(routes_search, "review_query", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom\nTraceback")))
    r = client.post("/api/query", json={"prompts": ["red"]})
    assert r.status_code == 500 and r.json() == {"error": "internal error: RuntimeError: boom"}


def test_uploads_are_limited_and_stay_in_temp(make_client):
    from PIL import Image

    c = make_client(upload_limit=50_000)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (230, 25, 25)).save(buf, format="PNG")
    r = c.post("/api/uploads", files={"file": ("../../evil.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    uid = r.json()["id"]
    tmp = c.app.state.warm.tmp
    assert [p.name for p in (tmp / "uploads").iterdir()] == [f"{uid}.img"]
    out = c.post("/api/query", json={"images": [uid]}).json()
    assert out["ranges"][0]["start"] == 20.0
    assert c.post("/api/query", json={"images": ["../../etc/passwd"]}).status_code == 404
    big = c.post("/api/uploads", files={"file": ("big.png", b"\0" * 60_000, "image/png")})
    assert big.status_code == 413
    bad = c.post("/api/uploads", files={"file": ("x.png", b"not an image", "image/png")})
    assert bad.status_code == 400 and "not an image" in bad.json()["error"]


def test_status_events_classify_and_openapi(client):
    s = client.get("/api/status").json()
    assert s["videos"] == 4 and s["chunks"]["failed"] == 0 and s["progress"] == 1.0 and not s["ingest_running"]
    ev = client.post("/api/events", json={"prompts": ["red"]}).json()
    firsts = sorted(v["first_appearance"] for v in ev["videos"] if v["events"])
    assert firsts == [20.0, 40.0]
    cl = client.post("/api/classify", json={"labels": "red, green, blue, purple"}).json()
    assert cl["labels"] == ["red", "green", "blue", "purple"] and cl["videos"]
    spec = client.get("/openapi.json").json()
    assert "/api/query" in spec["paths"] and "/api/cases/{name}/export" in spec["paths"]
    assert client.get("/docs").status_code == 404  # the Swagger page would load from a CDN
    page = client.get("/").text
    assert "/static/app.js" in page and "http" not in page.replace("http://www.w3.org", "")
