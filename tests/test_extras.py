"""Tests that need an optional extra skip with a reason when it is missing, and a strict run (CI)
turns every such skip into a failure; checked by running pytest on small generated test files."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from xml.etree import ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TESTS = '''
import pytest

def test_plain():
    pass

@pytest.mark.hub
def test_needs_an_uninstalled_extra():
    pass

@pytest.mark.ocr("no_such_module_ocr")
def test_needs_part_of_an_extra():
    pass

@pytest.mark.hub("json")
def test_needs_an_installed_part():
    pass

def test_importorskip():
    pytest.importorskip("no_such_module_x")

def test_gpu_skip():
    pytest.skip("no CUDA GPU on this machine")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
'''


def run_pytest(tmp_path: Path, strict: bool) -> tuple[int, dict[str, str]]:
    """Run the generated tests under a copy of tests/conftest.py: exit code, test -> "outcome: message"."""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    with open(tmp_path / "conftest.py", "a") as f:  # pretend the hub extra is missing
        f.write('\nEXTRAS["hub"] = (("no_such_module_hub",), ())\n')
    (tmp_path / "test_generated.py").write_text(TESTS)
    (tmp_path / "test_module_skip.py").write_text('import pytest\npytest.importorskip("no_such_module_y")\n')
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "VIDSEARCH_STRICT_EXTRAS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if strict:
        env["VIDSEARCH_STRICT_EXTRAS"] = "1"
    xml = tmp_path / "report.xml"
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-c", os.devnull,
                          "--rootdir", str(tmp_path), "--continue-on-collection-errors", f"--junitxml={xml}",
                          "test_generated.py", "test_module_skip.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    got = {}
    for case in ElementTree.parse(xml).iter("testcase"):
        result = next(iter(case), None)
        outcome = "passed" if result is None else result.get("type", result.tag)
        detail = "" if result is None else f"{result.get('message', '')} {result.text or ''}".strip()
        got[case.get("name")] = f"{outcome}: {detail}"
    return out.returncode, got


def test_missing_extras_skip_with_a_reason(tmp_path):
    code, got = run_pytest(tmp_path, strict=False)
    text = "\n".join(f"{k}: {v}" for k, v in sorted(got.items()))
    assert code == 0, text
    assert got["test_plain"] == got["test_needs_an_installed_part"] == "passed: ", text
    assert got["test_expected_failure"] == "pytest.xfail: known", text
    assert got["test_needs_an_uninstalled_extra"].startswith(
        "pytest.skip: missing extra: hub (not installed: no_such_module_hub; pip install -e '.[hub]')"), text
    assert got["test_needs_part_of_an_extra"].startswith(
        "pytest.skip: missing extra: ocr (not installed: no_such_module_ocr; pip install -e '.[ocr]')"), text
    assert got["test_importorskip"].startswith("pytest.skip: could not import 'no_such_module_x'"), text
    assert got["test_gpu_skip"].startswith("pytest.skip: no CUDA GPU on this machine"), text
    assert got["test_module_skip"].startswith("skipped: collection skipped"), text
    assert "could not import 'no_such_module_y'" in got["test_module_skip"], text


def test_a_strict_run_fails_every_skip_but_a_gpu_one(tmp_path):
    code, got = run_pytest(tmp_path, strict=True)
    text = "\n".join(f"{k}: {v}" for k, v in sorted(got.items()))
    assert code == 1, text
    assert got["test_plain"] == got["test_needs_an_installed_part"] == "passed: ", text
    assert got["test_expected_failure"] == "pytest.xfail: known", text
    assert got["test_gpu_skip"].startswith("pytest.skip: no CUDA GPU on this machine"), text
    for name in ("test_needs_an_uninstalled_extra", "test_needs_part_of_an_extra", "test_importorskip",
                 "test_module_skip"):
        assert got[name].startswith(("failure: ", "error: ")), text
        assert "skipped in a strict run (VIDSEARCH_STRICT_EXTRAS/CI: only GPU tests may skip)" in got[name], text
