"""Phone videos: a portrait recording is stored landscape with a display turn in the container.
Every picture vidsearch takes from it (embedded frames, thumbnails, clips) is the one a player shows."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest

from conftest import run_cli
from vidsearch.core.plan import Sampling
from vidsearch.demo.synth import write_video
from vidsearch.media.clips import cut_clip
from vidsearch.media.playback import transcode_range
from vidsearch.media.video import iter_frames, probe, quarter_turns, read_frame_at

W, H = 96, 160  # the picture as shown: portrait


def shown(k: int = 0, seconds: float = 4.0, fps: int = 10) -> list[np.ndarray]:
    """Frames as shown: red above blue; from 2 s on, the top left quarter is green."""
    out = []
    for i in range(int(seconds * fps)):
        img = np.zeros((H, W, 3), np.uint8)
        img[: H // 2] = (220, 30, 30)
        img[H // 2 :] = (30, 30, 220)
        if i >= 2 * fps:
            img[: H // 2, : W // 2] = (30, 200, 30)
        out.append(img)
    return out


def recorded(tmp_path, k: int, name: str = "phone.mp4", **kw):
    """The same frames stored turned back by ``k`` quarter turns, with a display turn of ``k``."""
    stored = [np.ascontiguousarray(np.rot90(img, -k)) for img in shown(k)]
    size = (stored[0].shape[1], stored[0].shape[0])
    return write_video(tmp_path / name, stored, size, 10, rotation=90 * k, **kw)


def looks_upright(img: np.ndarray, green_from_2s: bool = False) -> None:
    h, w = img.shape[:2]
    assert h > w, img.shape

    def mean(rows: slice, cols: slice) -> np.ndarray:
        return img[rows, cols].reshape(-1, 3).mean(0)

    top_left, top_right = mean(slice(h // 8, 3 * h // 8), slice(w // 8, 3 * w // 8)), mean(slice(h // 8, 3 * h // 8), slice(5 * w // 8, 7 * w // 8))
    bottom = mean(slice(5 * h // 8, 7 * h // 8), slice(w // 8, 7 * w // 8))
    assert top_right[0] > 150 and top_right[1] < 80 and top_right[2] < 80, top_right  # red above
    assert bottom[2] > 150 and bottom[0] < 80, bottom  # blue below
    if green_from_2s:
        assert top_left[1] > 150 and top_left[0] < 80, top_left  # green at the top left
    else:
        assert top_left[0] > 150 and top_left[1] < 80, top_left


@pytest.mark.parametrize("k", [1, 2, 3])
def test_probe_gives_the_shown_size_and_the_turn(tmp_path, k):
    info = probe(recorded(tmp_path, k))
    assert (info.width, info.height, info.rotation) == (W, H, 90 * k)
    plain = probe(write_video(tmp_path / "plain.mp4", shown(), (W, H), 10))
    assert (plain.width, plain.height, plain.rotation) == (W, H, 0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sampled_frames_and_thumbnails_are_upright(tmp_path, k):
    path = recorded(tmp_path, k)
    frames = list(iter_frames(path, 0.0, 4.0, Sampling("fps", 1.0), 32))
    assert [t for t, _ in frames] == [0.0, 1.0, 2.0, 3.0]
    for t, img in frames:
        assert min(img.shape[:2]) == 32
        looks_upright(img, green_from_2s=t >= 2)
    looks_upright(read_frame_at(path, 2.5), green_from_2s=True)


@pytest.mark.parametrize("how", ["copy", "reencode", "browser"])
def test_clips_show_the_picture_as_the_source_does(tmp_path, how):
    path = recorded(tmp_path, 1, "phone.mov")
    target = tmp_path / f"{how}.mp4"
    if how == "browser":
        transcode_range(path, 2.0, 3.0, target)
    else:
        assert cut_clip(str(path), 2.0, 3.0, target, copy=how == "copy").method == ("stream-copy" if how == "copy" else "re-encode")
    with av.open(str(target)) as c:
        frame = next(c.decode(video=0))
        assert quarter_turns(frame) == 1
    assert probe(target).rotation == 90
    looks_upright(read_frame_at(target, 0.5), green_from_2s=True)


def test_regions_of_a_portrait_video_are_boxed_where_a_player_shows_them(home, colour, runner, tmp_path):
    """Ingest with regions: the green corner is found in the top-left tile of the shown picture."""
    archive = tmp_path / "archive"
    recorded(archive, 1)
    run_cli(runner, "ingest", str(archive), "--model", "demo-colours", "--regions", "2", "--json")
    res = json.loads(run_cli(runner, "query", "green", "--json").stdout)
    best = res["ranges"][0]
    assert best["start"] >= 2.0
    assert best["box"] == [0.0, 0.0, 0.6667, 0.6667]  # the top left tile of the 2 x 2 grid (fractions of the shown picture)


def test_an_index_from_before_upright_frames_redoes_the_turned_video_once(home, colour, runner, tmp_path, monkeypatch):
    """An index an older version made (frames on their side, no turn in the catalog, markers that
    do not say upright): the next ingest probes the video again and redoes its chunks in place."""
    import duckdb

    import vidsearch.media.video as video

    archive = tmp_path / "archive"
    recorded(archive, 1)
    recorded(archive, 0, "landscape.mp4")

    def ingest() -> dict:
        return json.loads(run_cli(runner, "ingest", str(archive), "--model", "demo-colours", "--regions", "2", "--json").stdout)

    def green() -> list:
        return json.loads(run_cli(runner, "query", "green", "--json").stdout)["ranges"][0]["box"]

    def catalog(sql: str) -> list:
        con = duckdb.connect(str(home / "index" / "catalog.duckdb"))
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    with monkeypatch.context() as m:  # what an older version did
        m.setattr(video, "quarter_turns", lambda frame: 0)
        first = ingest()
    markers = list((home / "index" / "shards").rglob("*.done"))
    for p in markers:
        rec = json.loads(p.read_text())
        del rec["upright"]
        p.write_text(json.dumps(rec))
    catalog("UPDATE videos SET rotation = NULL")
    assert green() == [0.3333, 0.0, 1.0, 0.6667]  # on its side
    frames = catalog("SELECT count(*) FROM frames")[0][0]

    again = ingest()
    assert again["chunks_done"] == first["chunks_done"] // 2 and again["chunks_skipped"] == first["chunks_done"] // 2
    assert green() == [0.0, 0.0, 0.6667, 0.6667]
    assert catalog("SELECT count(*) FROM frames")[0][0] == frames  # replaced, not added
    assert sorted(catalog("SELECT width, height, rotation FROM videos")) == [(96, 160, 0), (96, 160, 90)]
    assert ingest()["chunks_done"] == 0


def test_example_images_are_taken_as_shown(colour, tmp_path):
    """A phone's photo (stored landscape, EXIF orientation 6) as a query image or a quantization sample."""
    from PIL import Image

    from vidsearch.media.samples import sample_frames
    from vidsearch.models.images import load_image_pixels

    up = shown()[-1]
    Image.fromarray(up).save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    Image.fromarray(np.ascontiguousarray(np.rot90(up, 1))).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    a, b = load_image_pixels(tmp_path / "upright.png", colour), load_image_pixels(tmp_path / "phone.jpg", colour)
    assert np.abs(a - b).mean() < 0.05, np.abs(a - b).mean()
    [img] = list(sample_frames([tmp_path / "phone.jpg"]))
    looks_upright(img, green_from_2s=True)

