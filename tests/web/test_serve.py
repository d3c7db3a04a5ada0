"""`vidsearch serve` as a process: prints its URL, binds loopback by default, needs a token elsewhere."""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

pytest.importorskip("fastapi", reason="needs the web extra: pip install 'vidsearch[web]'")

from webserve import demo, server, start_server  # noqa: E402,F401 - fixtures


def get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_on_loopback_needs_no_token(server):
    assert server.startswith("http://127.0.0.1:")
    status, body = get(server + "api/models")
    assert status == 200 and body["models"][0]["name"] == "demo-colours"


def test_serve_beyond_loopback_prints_a_token_and_requires_it(demo):
    root, env, index = demo
    proc, url = start_server(env, index, "--host", "0.0.0.0")
    try:
        m = re.match(r"http://0\.0\.0\.0:(\d+)/\?token=(\S+)$", url)
        assert m, url
        port, token = m.groups()
        base = f"http://127.0.0.1:{port}/api/models"
        status, body = get(base)
        assert status == 401 and "token" in body["error"]
        assert get(base, {"Authorization": f"Bearer {token}"})[0] == 200
        assert get(f"{base}?token={token}")[0] == 200
    finally:
        proc.terminate()
        err = proc.communicate(timeout=20)[1]
    assert "needs the token" in err


def test_a_stopped_server_leaves_no_temp_space(demo, tmp_path):
    root, env, index = demo
    proc, url = start_server({**env, "TMPDIR": str(tmp_path)}, index)
    try:
        assert get(url + "api/models")[0] == 200
        assert [p.name[:16] for p in tmp_path.iterdir()] == ["vidsearch-serve-"]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    assert list(tmp_path.iterdir()) == []
