"""Shared fixtures: an isolated VIDSEARCH_HOME, generated models and generated videos."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vidsearch.demo.models import colour_model, install_model, tiny_random_model
from vidsearch.demo.synth import make_video

#: file -> (duration, scenes); the times a colour query must find.
ARCHIVE = {
    "cam-a/morning.mp4": (40.0, [(10.0, 18.0, "red"), (30.0, 34.0, "blue")]),
    "cam-a/noon.mp4": (30.0, [(5.0, 9.0, "blue"), (20.0, 26.0, "red")]),
    "cam-b/evening.mp4": (25.0, [(12.0, 20.0, "green")]),
}


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch) -> None:
    """Tests never write into the real VIDSEARCH_HOME (e.g. model verification records)."""
    monkeypatch.setenv("VIDSEARCH_HOME", str(tmp_path_factory.getbasetemp() / "default-home"))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("VIDSEARCH_HOME", str(h))
    for var in ("VIDSEARCH_INDEX", "VIDSEARCH_MODEL", "VIDSEARCH_PROVIDERS", "VIDSEARCH_BROKER_URL"):
        monkeypatch.delenv(var, raising=False)
    return h


@pytest.fixture
def colour(home):
    """The colours-only stub model, installed as 'demo-colours' in the test home."""
    return install_model(colour_model, "demo-colours", home / "models")


@pytest.fixture
def tiny(home):
    return install_model(tiny_random_model, "tiny-random", home / "models")


@pytest.fixture(scope="session")
def _archive_master(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive-master")
    for i, (rel, (duration, scenes)) in enumerate(sorted(ARCHIVE.items())):
        make_video(root / rel, duration, scenes, seed=i)
    return root


@pytest.fixture
def archive(_archive_master, tmp_path) -> Path:
    """A fresh copy of the generated archive (tests may add or break files in it)."""
    dst = tmp_path / "archive"
    shutil.copytree(_archive_master, dst)
    return dst


@pytest.fixture
def runner():
    return CliRunner()


def run_cli(runner, *args, ok: bool = True):
    from vidsearch.cli import cli

    result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def make_audio_only(path: Path, seconds: float = 2.0) -> Path:
    """A valid media file with an audio stream and no video stream."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = 1024
        for i in range(int(seconds * 16000 / samples)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * samples
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    return path
