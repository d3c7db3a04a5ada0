"""The one settings object: precedence, defaults, the settings in effect, and that nothing else reads VIDSEARCH_*."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from conftest import run_cli
from vidsearch import settings as S
from vidsearch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CODE = sorted([*(ROOT / "vidsearch").rglob("*.py"), *(ROOT / "workers").rglob("*.py")])


def _home_with_config(tmp_path, **config) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    if config:
        (home / "config.json").write_text(json.dumps(config))
    return {"VIDSEARCH_HOME": str(home)}


def test_defaults(tmp_path):
    s = Settings.load({"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert s.home == tmp_path / "xdg" / "vidsearch"
    assert s.index is None and s.index_dir == s.home / "index"
    assert s.models_dir == s.home / "models" and s.config_path == s.home / "config.json"
    assert s.trt_cache_dir == s.home / "trt-cache"
    assert (s.providers, s.broker_url, s.model, s.gpu_name, s.hub_registry) == (None, None, None, None, None)
    assert (s.stall_s, s.max_crashes, s.threads, s.matrix_dtype) == ("30", "3", "0", "float16")
    assert s.hub_url == "https://huggingface.co" and s.visibility_timeout is None
    assert set(s.sources.values()) == {S.DEFAULT}
    assert Settings.load({}).home == Path("~/.local/share/vidsearch").expanduser()


def test_environment_beats_config_beats_default(tmp_path):
    env = _home_with_config(tmp_path, providers="cpu", broker_url="redis://cfg:6379/0", trt_profile=[2, 16, 64],
                            trt_fp16=False, gpu_device=1, trt_cache="~/cfg-cache")
    s = Settings.load(env)
    assert (s.providers, s.broker_url, s.trt_profile, s.trt_fp16, s.gpu_device) == (
        "cpu", "redis://cfg:6379/0", [2, 16, 64], False, 1)
    assert s.trt_cache == Path("~/cfg-cache").expanduser()
    assert s.sources["providers"] == "config key providers" and s.sources["trt_workspace"] == S.DEFAULT
    env.update(VIDSEARCH_PROVIDERS="cuda", VIDSEARCH_BROKER_URL="redis://env:6379/0", VIDSEARCH_TRT_PROFILE="1,8,8",
               VIDSEARCH_GPU_DEVICE="", VIDSEARCH_INDEX="~/idx", VIDSEARCH_THREADS="2")
    s = Settings.load(env)
    assert (s.providers, s.broker_url, s.trt_profile, s.threads) == ("cuda", "redis://env:6379/0", "1,8,8", "2")
    assert s.gpu_device == 1, "an empty variable counts as unset"
    assert s.sources["providers"] == "VIDSEARCH_PROVIDERS" and s.sources["gpu_device"] == "config key gpu_device"
    assert s.index == s.index_dir == Path("~/idx").expanduser()


def test_unreadable_config_is_empty(tmp_path):
    env = _home_with_config(tmp_path)
    (tmp_path / "home" / "config.json").write_text("{not json")
    assert dict(Settings.load(env).config) == {}


def test_settings_are_frozen(tmp_path):
    s = Settings.load(_home_with_config(tmp_path))
    with pytest.raises(Exception):
        s.threads = "4"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.config["x"] = 1  # type: ignore[index]


def test_current_reads_the_environment_unless_settings_are_in_use(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSEARCH_HOME", str(tmp_path / "a"))
    assert S.current().home == tmp_path / "a" and S.home() == tmp_path / "a"
    fixed = Settings.load({"VIDSEARCH_HOME": str(tmp_path / "b")})
    with S.use(fixed):
        monkeypatch.setenv("VIDSEARCH_HOME", str(tmp_path / "c"))
        assert S.current() is fixed and S.models_dir() == tmp_path / "b" / "models"
    assert S.current().home == tmp_path / "c"


def test_write_config_then_read_config_sees_the_change(home):
    with S.use(S.Settings.load()):
        S.write_config(default_model="x")
        assert S.read_config()["default_model"] == "x"


def test_cli_builds_settings_once_and_lower_layers_see_them(home, runner, monkeypatch):
    import vidsearch.doctor as doctor

    seen = {"loads": 0}
    load = Settings.load

    def counting_load(cls, environ=None):
        seen["loads"] += 1
        return load(environ)

    def fake_collect(model, providers, warm=False, broker=None):
        seen["current"] = S.current()
        return {}

    monkeypatch.setattr(doctor, "collect", fake_collect)
    monkeypatch.setattr(doctor, "checks", lambda report: [])
    monkeypatch.setattr(Settings, "load", classmethod(counting_load))
    monkeypatch.setenv("VIDSEARCH_THREADS", "3")
    run_cli(runner, "doctor", "--json")
    assert seen["loads"] == 1 and seen["current"].threads == "3"
    monkeypatch.setenv("VIDSEARCH_THREADS", "4")
    assert S.current().threads == "4", "the CLI's settings are in effect only while its command runs"


def test_cli_options_fall_back_to_their_variables(home, runner, monkeypatch, tmp_path):
    monkeypatch.setenv("VIDSEARCH_PROVIDERS", "gpu-please")  # checked by the option, as before
    r = run_cli(runner, "query", "x", ok=False)
    assert r.exit_code == 2 and "Invalid value for '--providers': 'gpu-please'" in r.output
    monkeypatch.delenv("VIDSEARCH_PROVIDERS")
    monkeypatch.setenv("VIDSEARCH_INDEX", str(tmp_path / "elsewhere"))
    assert f"no index at {tmp_path / 'elsewhere'}:" in run_cli(runner, "status", ok=False).output
    assert f"no index at {tmp_path / 'given'}:" in run_cli(runner, "--index", tmp_path / "given", "status", ok=False).output
    monkeypatch.delenv("VIDSEARCH_INDEX")
    assert f"no index at {home / 'index'}:" in run_cli(runner, "status", ok=False).output


# -- nothing but settings.py reads VIDSEARCH_* -----------------------------------------------


def _env_constants(tree: ast.AST) -> set[str]:
    """Module names bound to a "VIDSEARCH_..." string (``ENV_MODEL = "VIDSEARCH_SENTENCE_MODEL"``)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and str(node.value.value).startswith("VIDSEARCH_"):
            out |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return out


def test_only_settings_reads_vidsearch_variables():
    offenders = []
    for path in CODE:
        if path == ROOT / "vidsearch" / "settings.py":
            continue
        text = path.read_text()
        names = _env_constants(ast.parse(text))
        pattern = re.compile(r"VIDSEARCH_|\b(" + "|".join(map(re.escape, names)) + r")\b" if names else r"VIDSEARCH_")
        for no, line in enumerate(text.splitlines(), 1):
            if re.search(r"\benviron\b|getenv|envvar\s*=", line) and pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()}")
    assert not offenders, "read VIDSEARCH_* through vidsearch.settings:\n" + "\n".join(offenders)


def test_every_variable_the_code_names_is_a_setting_and_documented():
    doc = Settings.__doc__ or ""
    used = set()
    for path in CODE:
        used |= set(re.findall(r"VIDSEARCH_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    assert used <= set(S.VARIABLES), f"not read by Settings.load: {sorted(used - set(S.VARIABLES))}"
    assert all(re.search(rf"^\s*{v}\s", doc, re.M) for v in S.VARIABLES), "every variable has a row in the table"
