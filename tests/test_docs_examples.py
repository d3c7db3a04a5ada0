"""Every shell and SQL example in README.md and docs/*.md runs against the demo index.

Examples are found, not listed: fenced blocks tagged bash/sh/shell/console, untagged fenced
blocks that start with a command (``vidsearch``, ``duckdb``, ``cd``, ...) or a ``$ `` prompt,
fenced ``sql`` blocks, and inline code that starts with a command. So a new example runs by
default. What cannot run here is on ALLOWED below, each entry with its reason; a synopsis
(placeholders such as DIR, TEXT, ``...`` or ``<id>``) and an inline mention of a command
(``vidsearch query --json``: no argument) are not examples and are left out.

Shell examples run with bash (each block as one script; the examples of one document in order,
in one directory of their own beside the demo archive, as a reader would run them;
``~/.local/share/vidsearch`` is the test's VIDSEARCH_HOME) and must exit 0 without a traceback. A ``$ command`` block must print exactly the output shown under it. SQL blocks run
through ``vidsearch sql``, and through the stock ``duckdb`` CLI when they call no vidsearch
function (``text_embedding``/``image_embedding``).
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
COMMANDS = ("vidsearch", "duckdb", "cd", "python", "pip", "curl", "docker", "redis-server", "export", "tar", "bash", "sha256sum")
SHELL_TAGS = {"bash", "sh", "shell", "console"}
DEFAULT_HOME = "~/.local/share/vidsearch"

#: (pattern, reason): example lines that cannot run here. Keep each reason true; an entry that
#: matches no example fails the test, so the list cannot go stale.
ALLOWED: list[tuple[str, str]] = [
    (r"\bpip (install|uninstall)\b", "installs or removes packages (needs a package index; changes the environment)"),
    (r"^bash \.ci/run$", "the CI script: installs everything, then runs this very test suite"),
    (r"\bvidsearch serve\b", "starts a long-running web server (tests/web run it)"),
    (r"\bcurl\b|^S=http", "talks to a running `vidsearch serve` (tests/web/test_api.py covers the API)"),
    (r"\bdocker\b", "needs docker"),
    (r"--backend celery|\bvidsearch worker\b|\bredis-server\b|VIDSEARCH_BROKER_URL",
     "needs a Redis broker and a worker in the background (tests/ingest/test_distributed.py covers it)"),
    (r"\bvidsearch model (pull|import|export)\b|\btar czf\b", "downloads a real CLIP model, or needs one (or torch and a checkpoint)"),
    (r"clip-vit|clip-multilingual", "needs a real CLIP model installed"),
    (r'--labels "delivery,person,car,empty street"', "needs a real CLIP model: the demo model knows only colour words"),
    (r"--warmup|--providers (cuda|tensorrt)|VIDSEARCH_PROVIDERS=tensorrt|ops/bench/encoder\.py", "needs a GPU"),
    (r"--ocr\b|--text-in-frame|ops/bench/ocr", "needs the OCR models and an index read with --ocr (tests/ocr cover it)"),
    (r"ops/bench/", "benchmarks: minutes of generated video and timing"),
    (r"--model bench-512\b", "the benchmark's index and random-weight model (ops/bench/query.py builds both)"),
    (r"suspect\.jpg|car\.jpg", "needs the reader's own example image"),
    (r"^vidsearch ingest /archive\b", "the reader's own archive"),
    (r"import open_clip", "needs the export extra (torch, open_clip)"),
    (r"^python ops/gen_docs\.py$", "rewrites docs/cli.md in the checkout (tests/test_docs.py runs it with --check)"),
]
#: a synopsis, not an example: placeholders the reader replaces
PLACEHOLDER = re.compile(r"\b(DIR|TEXT|RESULTS|PATH|NAME|ARCHIVE|QUERY|FILE)\b|\.\.\.|<[a-z_]+>|\ba,b,c\b")


@dataclasses.dataclass
class Example:
    where: str
    kind: str  # "sh", "sql" or "sample" ($ command and its output)
    lines: list[str]
    expected: str = ""

    def runnable(self) -> list[str]:
        return [ln for ln in self.lines if allowed_reason(ln) is None and not PLACEHOLDER.search(ln)]


def allowed_reason(line: str) -> str | None:
    return next((why for pat, why in ALLOWED if re.search(pat, line)), None)


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` outside quotes, after a space)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def shell_lines(body: str) -> list[str]:
    """Commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    out, cur = [], ""
    for raw in body.splitlines():
        cur += raw
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        line = _strip_comment(cur).strip()
        cur = ""
        if line:
            out.append(line)
    return out


FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.S | re.M)
#: subcommands that are whole examples with no argument
NO_ARGS = {"status", "demo", "doctor", "model list", "model default", "serve", "worker"}


def _mention(code: str) -> bool:
    """Inline ``vidsearch query --json`` names a command (or its output), it is not an example:
    a vidsearch command with no argument that is not an option, unless it needs none."""
    words = code.split()
    if words[0] != "vidsearch" or len(words) < 2:
        return False
    sub = " ".join(words[1:3]) if words[1] == "model" else words[1]
    rest = words[1 + len(sub.split()):]
    return sub not in NO_ARGS and not any(not w.startswith("-") for w in rest)


def _is_command(line: str) -> bool:
    return line.split(" ", 1)[0] in COMMANDS or "=" in line.split(" ", 1)[0]


def _block(where: str, lang: str, body: str) -> Example | None:
    first = next((ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
    if lang == "sql":
        return Example(where, "sql", [body])
    if first.startswith("$ "):
        lines = body.splitlines()
        return Example(where, "sample", [lines[0][2:]], "\n".join(lines[1:]) + "\n")
    if lang in SHELL_TAGS or (not lang and _is_command(first)):
        return Example(where, "sh", shell_lines(body))
    return None


def examples() -> list[Example]:
    found = []
    for path in DOCS:
        text = path.read_text()
        rel = path.relative_to(ROOT).as_posix()
        for m in FENCE.finditer(text):
            ex = _block(f"{rel}:{text[:m.start()].count(chr(10)) + 1}", m.group(1), textwrap.dedent(m.group(2)))
            if ex is not None:
                found.append(ex)
        prose = FENCE.sub(lambda m: "\n" * m.group().count("\n"), text)
        for m in re.finditer(r"`([^`]+)`", prose):
            code = " ".join(m.group(1).split())
            if _is_command(code) and " " in code and not _mention(code):
                found.append(Example(f"{rel}:{prose[:m.start()].count(chr(10)) + 1}", "sh", [code]))
    return found


EXAMPLES = examples()


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """`vidsearch demo` + ingest with demo-colours, as the README's quick start does."""
    root = tmp_path_factory.mktemp("docs-examples")
    env = {**os.environ, "VIDSEARCH_HOME": str(root / "home"), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for var in ("VIDSEARCH_INDEX", "VIDSEARCH_MODEL", "VIDSEARCH_PROVIDERS", "VIDSEARCH_BROKER_URL", "COLUMNS"):
        env.pop(var, None)
    for cmd in ("vidsearch demo", "vidsearch ingest vidsearch-demo/archive --model demo-colours --quiet"):
        subprocess.run(cmd, shell=True, cwd=root, env=env, check=True, capture_output=True)
    return root, env


def _bash(script: str, cwd: Path, env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    script = script.replace(DEFAULT_HOME, env["VIDSEARCH_HOME"])
    return subprocess.run(["bash", "-c", "set -eo pipefail\n" + script], cwd=cwd, env=env, input=stdin or "",
                          capture_output=True, text=True, timeout=300)


def _check(res: subprocess.CompletedProcess, what: str) -> None:
    assert res.returncode == 0 and "Traceback" not in res.stderr, f"{what}\n{res.stdout}\n{res.stderr}"


RUNNABLE = [e for e in EXAMPLES if e.runnable()]


def _doc_dir(root: Path, where: str) -> Path:
    """The directory a reader of one document runs its examples in, in order (shared by them)."""
    cwd = root / "readers" / where.split(":")[0].replace("/", "_")
    if not cwd.exists():
        cwd.mkdir(parents=True)
        (cwd / "vidsearch-demo").symlink_to(root / "vidsearch-demo")
    return cwd


@pytest.mark.parametrize("ex", RUNNABLE, ids=[f"{e.where}:{e.kind}" for e in RUNNABLE])
def test_example_runs(ex, demo_index):
    root, env = demo_index
    lines = ex.runnable()
    if ex.kind == "sample":  # in the directory the quick start ran in, as the README shows it
        res = _bash(lines[0], root, env)
        _check(res, ex.where)
        assert res.stdout == ex.expected, f"{ex.where}: the sample output is not what `{lines[0]}` prints"
        return
    cwd = _doc_dir(root, ex.where)
    if ex.kind == "sh":
        _check(_bash("\n".join(lines), cwd, env), f"{ex.where}: {lines}")
        return
    sql = ex.lines[0]
    _check(_bash("vidsearch sql -", cwd, env, stdin=sql), f"{ex.where}: vidsearch sql")
    if not re.search(r"\b(text|image)_embedding\(", sql):
        catalog = Path(env["VIDSEARCH_HOME"]) / "index" / "catalog.duckdb"
        _check(_bash(f"duckdb -readonly {catalog}", cwd, env, stdin=sql), f"{ex.where}: duckdb")


def test_every_allowance_is_used_and_examples_are_found():
    assert len(EXAMPLES) > 40 and {e.kind for e in EXAMPLES} == {"sh", "sql", "sample"}
    lines = [ln for e in EXAMPLES for ln in e.lines]
    unused = [pat for pat, _ in ALLOWED if not any(re.search(pat, ln) for ln in lines)]
    assert not unused, f"allow-list entries that match no example any more: {unused}"
    assert shutil.which("bash")
