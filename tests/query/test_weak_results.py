"""`vidsearch query` says when its ranges are weak: `query purple` on the demo archive (no purple)."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli


@pytest.fixture
def demo(home, colour, tmp_path, runner):
    run_cli(runner, "demo", "--out", tmp_path / "demo")
    run_cli(runner, "ingest", tmp_path / "demo" / "archive", "--model", "demo-colours")


def test_purple_is_weak_and_red_is_not(demo, runner):
    purple = run_cli(runner, "query", "purple")
    lines = purple.stdout.splitlines()
    assert lines[0].startswith("weak results: no range stands out in 285 frames (") and lines[1].startswith("#")
    data = json.loads(run_cli(runner, "query", "purple", "--json").stdout)
    assert data["ranges"] and all(r["weak"] is True for r in data["ranges"])
    red = run_cli(runner, "query", "red")
    assert "weak results" not in red.stdout and red.stdout.startswith("#")
    data = json.loads(run_cli(runner, "query", "red", "--json").stdout)
    assert len(data["ranges"]) == 2 and all(r["weak"] is False for r in data["ranges"])
