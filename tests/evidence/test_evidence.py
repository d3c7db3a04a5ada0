"""Evidence export: thumbnails, clips, HTML report (rendered in headless Chromium), hashed manifest."""
from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from vidsearch.evidence.manifest import verify_manifest
from vidsearch.evidence.report import Series, svg_plot
from vidsearch.media.clips import cut_clip
from vidsearch.models.contract import sha256_file

GOP_S = 2.0  # synth.make_video: a keyframe at least every 2 seconds


@pytest.fixture
def hits(home, colour, archive, runner, tmp_path) -> Path:
    """The archive indexed, and `vidsearch query red --json` saved to a file."""
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")
    path = tmp_path / "hits.json"
    path.write_text(run_cli(runner, "query", "red", "--json").stdout)
    return path


def decode(path: Path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(c.streams.video[0])]


def morning(ranges: list[dict]) -> dict:
    return next(r for r in ranges if r["path"].endswith("morning.mp4"))


def mean_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).mean(0)


def test_export_writes_verified_evidence(hits, home, colour, runner, tmp_path):
    out = tmp_path / "evidence"
    res = run_cli(runner, "export", hits, "--out", out)
    manifest_bytes = (out / "manifest.json").read_bytes()
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    assert f"manifest sha256: {digest}" in res.stdout
    assert (out / "manifest.sha256").read_text() == f"{digest}  manifest.json\n"
    assert verify_manifest(out) == []
    m = json.loads(manifest_bytes)
    assert m["format"] == "vidsearch-evidence/1" and m["tool"]["name"] == "vidsearch" and m["created_at"].endswith("+00:00")
    # the model: id and the sha256 of its files, as model.json has them
    model_json = json.loads((home / "models" / "demo-colours" / "model.json").read_text())
    assert m["model"]["model_id"] == colour.model_id and m["model"]["name"] == "demo-colours"
    assert m["model"]["files"] == model_json["files"] and m["model"]["files_match_model_id"] is True
    assert m["query"]["prompts"] == ["red"] and m["query"]["label"] == "red" and m["query"]["threshold"] > 0
    # sources re-hashed now, equal to the id they were indexed under
    assert len(m["sources"]) == 2
    for s in m["sources"]:
        assert s["verified"] is True and s["sha256"] == s["video_id"] == sha256_file(s["path"])
    # ranges, exactly
    assert sorted((Path(r["path"]).name, r["start"], r["end"]) for r in m["ranges"]) == [("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)]
    assert [r["rank"] for r in m["ranges"]] == [1, 2]
    for r in m["ranges"]:
        thumb = out / r["thumbnail"]["path"]
        assert r["thumbnail"]["sha256"] == sha256_file(thumb) == m["files"][r["thumbnail"]["path"]]
        red, green, blue = mean_rgb(thumb)
        assert red > 150 and green < 90 and blue < 90  # the peak frame shows the red scene
        clip = r["clip"]
        assert clip["method"] == "stream-copy" and clip["sha256"] == m["files"][clip["path"]]
        assert clip["audio"] is None  # the demo videos have no sound (tests/media/test_clips.py: with sound)
        # stream copy starts on the keyframe at or before the range start: at most one GOP early
        assert r["start"] - GOP_S <= clip["start"] <= r["start"]
        times = decode(out / clip["path"])
        span = times[-1] - times[0] + 0.1  # 10 fps
        assert len(times) == clip["frames"]
        assert r["end"] - r["start"] - 1e-6 <= span <= r["end"] - r["start"] + GOP_S + 1e-6
        assert clip["end"] == pytest.approx(r["end"])
    # scores behind the plots: every frame of both videos
    lines = (out / "scores.csv").read_text().splitlines()
    assert lines[0] == "video_id,pts,score" and len(lines) == 1 + 40 + 30
    # the report: one plot and one thumbnail per range, relative paths that exist
    page = (out / "report.html").read_text()
    assert page.count('<svg class="plot"') == 2 and page.count('class="score"') == 2
    srcs = re.findall(r'<img class="thumb" src="([^"]+)"', page)
    assert len(srcs) == 2 and all((out / s).is_file() for s in srcs)
    assert "<script" not in page and "source verified" in page
    # evidence is never overwritten
    again = run_cli(runner, "export", hits, "--out", out, ok=False)
    assert again.exit_code != 0 and "not empty" in again.output


def test_tampering_is_detected(hits, runner, tmp_path):
    out = tmp_path / "ev"
    run_cli(runner, "export", hits, "--out", out, "--no-clips")
    assert not (out / "clips").exists() and verify_manifest(out) == []
    thumb = next((out / "thumbs").glob("*.jpg"))
    thumb.write_bytes(thumb.read_bytes() + b"x")
    assert verify_manifest(out) == [f"thumbs/{thumb.name}: SHA-256 differs"]
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text.replace('"red"', '"blue"', 1))
    assert "manifest.json does not match manifest.sha256" in verify_manifest(out)


def test_clip_reencode_pad_and_fallback(hits, runner, tmp_path, monkeypatch):
    out = tmp_path / "re"
    run_cli(runner, "export", hits, "--out", out, "--reencode")
    m = json.loads((out / "manifest.json").read_text())
    r = morning(m["ranges"])
    assert r["clip"]["method"] == "re-encode" and r["clip"]["start"] == 10.0 and r["clip"]["frames"] == 80
    times = decode(out / r["clip"]["path"])
    assert len(times) == 80 and times[0] == 0.0
    # padding: 1 s each side; the copy begins at a keyframe at or before 9 s
    out = tmp_path / "pad"
    run_cli(runner, "export", hits, "--out", out, "--pad", "1")
    c = morning(json.loads((out / "manifest.json").read_text())["ranges"])["clip"]
    assert 9.0 - GOP_S <= c["start"] <= 9.0 and c["end"] == pytest.approx(19.0)
    # a stream copy that fails falls back to re-encoding
    import vidsearch.media.clips as clips

    def broken(*a, **k):
        raise ValueError("codec not supported by the container")

    monkeypatch.setattr(clips, "_copy_clip", broken)
    src = next(r["path"] for r in json.loads(hits.read_text())["ranges"] if r["path"].endswith("noon.mp4"))
    clip = cut_clip(src, 20.0, 26.0, tmp_path / "fb" / "c.mp4")
    assert clip.method == "re-encode" and clip.start == 20.0 and len(decode(clip.path)) == 60


def test_changed_source_is_reported_loudly(hits, runner, tmp_path):
    results = json.loads(hits.read_text())
    noon = next(Path(r["path"]) for r in results["ranges"] if r["path"].endswith("noon.mp4"))
    with open(noon, "ab") as f:
        f.write(b"\0" * 16)  # still plays, but it is not the file that was indexed
    out = tmp_path / "ev"
    res = run_cli(runner, "export", hits, "--out", out, ok=False)
    assert res.exit_code != 0 and "changed since it was indexed" in res.output and "--allow-mismatch" in res.output
    assert not out.exists()
    res = run_cli(runner, "export", hits, "--out", out, "--allow-mismatch")
    assert "WARNING: SOURCE NOT VERIFIED" in res.stderr and str(noon) in res.stderr
    m = json.loads((out / "manifest.json").read_text())
    by_path = {s["path"]: s for s in m["sources"]}
    assert by_path[str(noon)]["verified"] is False and by_path[str(noon)]["sha256"] == sha256_file(noon)
    assert by_path[str(noon)]["sha256"] != by_path[str(noon)]["video_id"]
    assert sum(s["verified"] for s in m["sources"]) == 1 and any("NOT VERIFIED" in w for w in m["warnings"])
    assert "SOURCE NOT VERIFIED" in (out / "report.html").read_text()
    assert verify_manifest(out) == []


def test_export_from_stdin_and_from_events(hits, runner, tmp_path):
    from vidsearch.cli import cli

    res = runner.invoke(cli, ["export", "-", "--out", str(tmp_path / "a"), "--no-clips", "--json"], input=hits.read_text())
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ranges"] == 2
    events = run_cli(runner, "events", "red", "--json").stdout
    res = runner.invoke(cli, ["export", "-", "--out", str(tmp_path / "b"), "--no-clips"], input=events)
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert sorted((r["start"], r["end"]) for r in m["ranges"]) == [(10.0, 18.0), (20.0, 26.0)]
    bad = runner.invoke(cli, ["export", "-", "--out", str(tmp_path / "c")], input='{"hello": 1}')
    assert bad.exit_code != 0 and "not a result set" in bad.output


def test_svg_plot_is_drawn_to_scale():
    s = Series(np.arange(10.0), np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 0], dtype=float))
    svg = svg_plot(s, [{"start": 2.0, "end": 5.0, "peak_time": 2.0, "peak_score": 1.0}], duration=10.0, threshold=0.5,
                   smooth_s=0.0, width=148, height=138)
    # plot area: x 48..136 (88 px for 10 s), y 10..110 (100 px for 0..1.05)
    assert '<rect class="range" x="65.6" y="10" width="26.4" height="100"' in svg
    raw = re.search(r'class="score" points="([^"]+)"', svg).group(1).split()
    assert raw[0] == "48.0,110.0" and raw[2] == "65.6,14.8"
    assert 'class="threshold" x1="48" y1="62.4"' in svg


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; };
  document.body.setAttribute('data-imgs', JSON.stringify([...document.images].map(i => [i.naturalWidth, ...box(i)])));
  document.body.setAttribute('data-plots', JSON.stringify([...document.querySelectorAll('svg.plot')].map(box)));
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(hits, runner, tmp_path):
    from PIL import Image

    out = tmp_path / "ev"
    run_cli(runner, "export", hits, "--out", out, "--no-clips")
    # a copy beside the original (same relative paths) that reports what the browser loaded and where
    check = out / "report-check.html"
    check.write_text((out / "report.html").read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--force-device-scale-factor=1", "--allow-file-access-from-files", "--window-size=1200,1600"]

    def chrome(*args):
        profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
        return subprocess.run([*base, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120)

    dom = chrome("--virtual-time-budget=10000", "--dump-dom", check.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    imgs = json.loads(html.unescape(re.search(r'data-imgs="([^"]*)"', dom.stdout).group(1)))
    plots = json.loads(html.unescape(re.search(r'data-plots="([^"]*)"', dom.stdout).group(1)))
    assert len(imgs) == 2 and all(w > 0 for w, *_ in imgs), imgs  # both thumbnails loaded
    assert len(plots) == 2 and all(p[2] > 500 and p[3] > 100 for p in plots)

    png = tmp_path / "shot.png"
    shot = chrome(f"--screenshot={png}", "--virtual-time-budget=10000", (out / "report.html").as_uri())
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    px = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert px.std() > 20  # not a blank page
    for _, x, y, w, h in imgs:  # each thumbnail is on screen, showing the red scene
        r, g, b = px[int(y + h * 0.2): int(y + h * 0.8), int(x + w * 0.05): int(x + w * 0.3)].reshape(-1, 3).mean(0)
        assert r > 150 and g < 90 and b < 90, (x, y, r, g, b)
    for x, y, w, h in plots:  # each plot shows the score line (#1f77b4) and a shaded range (#ffd54f)
        region = px[int(y): int(y + h), int(x): int(x + w)].reshape(-1, 3)
        line = (np.abs(region - [31, 119, 180]).sum(1) < 40).sum()
        shade = (np.abs(region - [255, 229, 150]).sum(1) < 60).sum()
        assert line > 200 and shade > 1000, (line, shade)
