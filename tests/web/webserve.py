"""The demo archive indexed once per module (plus an MPEG-4 Part 2 AVI a browser cannot play), and a
real ``vidsearch serve`` on it."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: the ranges `query "red"` finds in the demo archive, best first (vidsearch.demo.synth.DEMO_ARCHIVE)
RED = [("cam-lobby/2026-11-02_0800.mp4", 20.0, 35.0), ("cam-lobby/2026-11-02_0900.mp4", 40.0, 52.0)]
AVI = "cam-old/2026-11-02_0700.avi"  # purple 10-20 s (a tone too), mpeg4 + mp2 in AVI: transcoded for the browser


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDSEARCH_")}
    env.update(VIDSEARCH_HOME=str(home), PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """(root, env, index dir) of the demo archive ingested with the demo model."""
    from vidsearch.demo.models import colour_model, install_model
    from vidsearch.demo.synth import make_demo_archive, make_video

    root = tmp_path_factory.mktemp("webdemo")
    home = root / "home"
    install_model(colour_model, "demo-colours", home / "models")
    make_demo_archive(root / "archive")
    make_video(root / "archive" / AVI, 30.0, [(10.0, 20.0, "purple")], codec="mpeg4", seed=7, audio="mp2")
    env = _env(home)
    subprocess.run([sys.executable, "-m", "vidsearch", "--index", str(root / "index"), "ingest", str(root / "archive"),
                    "--model", "demo-colours"], env=env, check=True, capture_output=True, timeout=300)
    return root, env, root / "index"


@pytest.fixture
def app_env(demo, monkeypatch):
    root, env, index = demo
    monkeypatch.setenv("VIDSEARCH_HOME", env["VIDSEARCH_HOME"])
    for var in ("VIDSEARCH_INDEX", "VIDSEARCH_MODEL", "VIDSEARCH_PROVIDERS"):
        monkeypatch.delenv(var, raising=False)
    return index


def start_server(env: dict, index: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``vidsearch serve --port 0`` in a subprocess; returns it and the URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "vidsearch", "serve", "--index", str(index), "--port", "0", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"(http://\S+)", line or "")
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {proc.stderr.read()}")
    proc.kill()
    raise RuntimeError("serve printed no URL within 60 s")


@pytest.fixture(scope="module")
def server(demo):
    root, env, index = demo
    proc, url = start_server(env, index)
    yield url
    proc.terminate()
    proc.wait(timeout=20)
