"""Small truths of the demo archive: counts inside a time window, modes of what `demo` installs."""
from __future__ import annotations

import os
import stat

from conftest import run_cli


def test_no_matches_counts_only_frames_inside_the_window(home, colour, tmp_path, runner):
    run_cli(runner, "demo", "--out", tmp_path / "demo")
    run_cli(runner, "ingest", tmp_path / "demo" / "archive", "--model", "demo-colours")
    window = ("--after", "2026-11-02T09:00:00Z", "--before", "2026-11-02T09:00:10Z")  # 10 s of one video at 1 fps
    assert run_cli(runner, "query", "cat", *window).stdout == "no matches for 'cat' in 10 frames\n"
    assert run_cli(runner, "query", "red", "--min-score", "0.999", *window).stdout == "no matches for 'red' in 10 frames\n"
    assert run_cli(runner, "query", "cat").stdout == "no matches for 'cat' in 285 frames\n"


def test_demo_model_directory_has_normal_permissions(home, tmp_path, runner):
    old = os.umask(0o022)
    try:
        run_cli(runner, "demo", "--out", tmp_path / "demo")
    finally:
        os.umask(old)
    model = home / "models" / "demo-colours"
    assert stat.S_IMODE(model.stat().st_mode) == 0o755
    for f in model.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    os.umask(0o077)
    try:
        run_cli(runner, "demo", "--out", tmp_path / "demo2")
    finally:
        os.umask(old)
    assert stat.S_IMODE(model.stat().st_mode) == 0o700  # the umask is respected


def test_a_newline_in_a_file_name_does_not_split_output_lines(home, colour, archive, runner):
    src = archive / "cam-a" / "morning.mp4"
    odd = archive / "cam-a" / "two\nlines.mp4"
    src.rename(odd)
    res = run_cli(runner, "ingest", archive, "--model", "demo-colours")
    assert "two\nlines" not in res.output
    table = run_cli(runner, "query", "red").stdout
    assert "two\\nlines.mp4" in table and "two\nlines" not in table
    assert len(table.splitlines()) == 2 + 2  # header, rule, two ranges
    for args in (("events", "red", "--csv"), ("classify", "--labels", "red,blue", "--csv"),
                 ("sql", "SELECT path FROM videos ORDER BY path", "--csv"), ("sql", "SELECT path FROM videos ORDER BY path"),
                 ("status", "--videos")):
        out = run_cli(runner, *args).stdout
        assert "two\\nlines.mp4" in out and "two\nlines" not in out, (args, out)
