"""Documentation stays true: generated reference files are current, every command is documented."""
from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_generated_docs_and_schemas_are_current():
    out = subprocess.run([sys.executable, str(ROOT / "ops" / "gen_docs.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_command_has_help_and_is_in_the_reference():
    gen = runpy.run_path(str(ROOT / "ops" / "gen_docs.py"))
    from vidsearch.cli import cli

    text = (ROOT / "docs" / "cli.md").read_text()
    for name, cmd in gen["_commands"](cli, "vidsearch"):
        assert cmd.help or cmd.short_help, f"{name} has no help text"
        assert f"## {name}\n" in text


def test_readme_has_the_two_newcomer_commands():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && vidsearch demo && vidsearch ingest" in readme
    assert "bash .ci/run" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pytest" in ci


def test_model_json_follows_the_schema(tmp_path):
    from vidsearch.demo.models import colour_model

    schema = json.loads((ROOT / "schemas" / "model.schema.json").read_text())
    colour_model(tmp_path)
    data = json.loads((tmp_path / "model.json").read_text())
    for key in schema["required"]:
        assert key in data
    assert set(data) <= set(schema["properties"])
    assert data["format"] == schema["properties"]["format"]["const"]
    assert set(schema["properties"]["files"]["required"]) <= set(data["files"])


def test_marker_follows_the_schema(home, colour, archive, runner):
    from conftest import run_cli

    run_cli(runner, "ingest", archive, "--model", "demo-colours")
    schema = json.loads((ROOT / "schemas" / "chunk-marker.schema.json").read_text())
    marker = json.loads(next((home / "index" / "shards").rglob("*.done")).read_text())
    assert set(schema["required"]) <= set(marker)
    assert set(marker) <= set(schema["properties"])
