"""Documentation stays true: generated reference files are current, every command is documented."""
from __future__ import annotations

import json
import re
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


# --- README "How it is built": one line per subpackage, and the layering rule -----------------


def built_section(readme: str) -> str:
    start = readme.index("## How it is built\n")
    end = readme.find("\n## ", start + 1)
    return readme[start:end if end > 0 else len(readme)]


def map_names(section: str) -> tuple[set[str], set[str], set[str]]:
    """(vidsearch subpackages, vidsearch modules, top-level folders) the section's map names."""
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block, "the section has no map (a fenced block)"
    packages, modules, top, inside = set(), set(), set(), False
    for line in block[1].splitlines():
        names = re.match(r"\s*((?:\S+(?:/|\.py) ?)+)", line)
        names = names[1].split() if names else []
        if not line.startswith(" "):
            inside = names == ["vidsearch/"]
            top |= {n.rstrip("/") for n in names if not inside}
        elif inside:
            packages |= {n.rstrip("/") for n in names if n.endswith("/")}
            modules |= {n for n in names if n.endswith(".py")}
    return packages, modules, top


def map_problems(section: str, root: Path) -> list[str]:
    """What the map gets wrong about the tree at ``root``."""
    packages, modules, top = map_names(section)
    real = {d.name for d in (root / "vidsearch").iterdir() if (d / "__init__.py").is_file()}
    after = section[re.search(r"```\n.*?```", section, re.S).end():]
    rule = after.split("\n#")[0]  # the paragraph(s) between the map and the next heading
    return ([f"vidsearch/{p}/ is not in the map" for p in sorted(real - packages)]
            + [f"the map names vidsearch/{p}/, which is no package" for p in sorted(packages - real)]
            + [f"the map names vidsearch/{m}, which does not exist" for m in sorted(modules)
               if not (root / "vidsearch" / m).is_file()]
            + [f"the map names {t}/, which does not exist" for t in sorted(top) if not (root / t).is_dir()]
            + [f"the map lacks {t}/" for t in ("workers", "schemas", "ops", "docker") if t not in top]
            + [f"the layering rule after the map does not place `{p}`" for p in sorted(packages)
               if f"`{p}`" not in rule])


def test_readme_map_names_every_subpackage_and_the_layering_rule():
    problems = map_problems(built_section((ROOT / "README.md").read_text()), ROOT)
    assert not problems, "README.md, How it is built:\n  " + "\n  ".join(problems)


def test_the_map_check_catches_a_missing_and_a_stale_subpackage(tmp_path):
    for d in ("vidsearch/core", "vidsearch/query", "workers", "schemas", "ops", "docker"):
        (tmp_path / d).mkdir(parents=True)
    for f in ("vidsearch/core/__init__.py", "vidsearch/query/__init__.py", "vidsearch/errors.py"):
        (tmp_path / f).write_text("")
    section = built_section("""## How it is built\n\n```\nvidsearch/\n  core/   pure\n  media/  adapter
  errors.py gone.py   errors\nworkers/  tasks\nschemas/ s\nops/ o\n```\n\n`core` < `media`\n\n## Next\n""")
    assert map_names(section) == ({"core", "media"}, {"errors.py", "gone.py"}, {"workers", "schemas", "ops"})
    assert map_problems(section, tmp_path) == [
        "vidsearch/query/ is not in the map",
        "the map names vidsearch/media/, which is no package",
        "the map names vidsearch/gone.py, which does not exist",
        "the map lacks docker/",
    ]
