"""Models are verified where they are used: a changed ONNX file never runs under the genuine id."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import run_cli
from vidsearch.errors import ModelError
from vidsearch.models import contract, verify
from vidsearch.models.contract import load_model_info
from vidsearch.models.encoder import Encoder
from vidsearch.models.verify import verify_model_files


def _flip_one_byte(path: Path) -> None:
    """Change one byte in place (same size, same inode): the quietest tampering there is."""
    with open(path, "r+b") as f:
        f.seek(-20, 2)
        b = f.read(1)
        f.seek(-20, 2)
        f.write(bytes([b[0] ^ 0x01]))


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """Names of the model files hashed in full (the counter on the one hash function)."""
    seen: list[str] = []
    real = contract.sha256_file

    def counting(path, *a, **kw):
        seen.append(Path(path).name)
        return real(path, *a, **kw)

    monkeypatch.setattr(contract, "sha256_file", counting)
    return seen


def _error(result) -> str:
    """The one error line (the demo model's note may precede it)."""
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip() and not ln.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_ingest_refuses_a_changed_image_tower(colour, archive, home, runner):
    image = colour.path / "image.onnx"
    _flip_one_byte(image)
    msg = _error(run_cli(runner, "ingest", archive, "--model", "demo-colours", ok=False))
    assert f"{image} does not match the sha256 in model.json" in msg
    assert contract.sha256_file(image) in msg and colour.files["image.onnx"] in msg  # both hashes
    assert not list((home / "index").rglob("*.parquet"))  # nothing was stored under the model id


def test_query_refuses_a_changed_text_tower(colour, archive, runner):
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "30")
    assert "morning.mp4" in run_cli(runner, "query", "red").output
    text = colour.path / "text.onnx"
    _flip_one_byte(text)
    msg = _error(run_cli(runner, "query", "red", ok=False))
    assert f"{text} does not match the sha256 in model.json" in msg
    assert contract.sha256_file(text) in msg and colour.files["text.onnx"] in msg


def test_untampered_loads_do_not_rehash(colour, archive, runner, hashed, monkeypatch):
    monkeypatch.setattr(verify, "RACY_NS", 0)  # the generated files are brand new
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "30")
    run_cli(runner, "query", "red")
    assert sorted(hashed) == ["image.onnx", "text.onnx"]  # each hashed once, at its first load
    run_cli(runner, "query", "blue")
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")
    Encoder(load_model_info("demo-colours")).encode_texts(["green"])
    assert sorted(hashed) == ["image.onnx", "text.onnx"]


def test_a_change_after_a_recorded_check_is_caught(colour, hashed, monkeypatch):
    monkeypatch.setattr(verify, "RACY_NS", 0)
    Encoder(colour).encode_texts(["red"])
    Encoder(colour).encode_texts(["red"])
    assert hashed == ["text.onnx"]
    time.sleep(0.05)  # past the file system's timestamp granularity
    _flip_one_byte(colour.path / "text.onnx")
    with pytest.raises(ModelError, match="text.onnx does not match the sha256") as e:
        Encoder(colour).encode_texts(["red"])
    assert "\n" not in str(e.value)
    assert hashed == ["text.onnx", "text.onnx"]


def test_recently_changed_files_are_hashed_again(colour, hashed):
    """Files written within RACY_NS of their check are not trusted by stat alone."""
    for _ in range(2):
        Encoder(colour).encode_texts(["red"])
    assert hashed == ["text.onnx", "text.onnx"]


def test_a_read_only_home_still_verifies(colour, hashed, monkeypatch, tmp_path):
    monkeypatch.setattr(verify, "RACY_NS", 0)
    monkeypatch.setattr(verify, "home", lambda: tmp_path / "file-not-dir")
    (tmp_path / "file-not-dir").write_text("")
    for _ in range(2):
        Encoder(colour).encode_texts(["red"])
    assert hashed == ["text.onnx", "text.onnx"]  # no record can be kept: full hash each time


def test_verify_model_files_hashes_the_files_as_they_are_now(colour, hashed, monkeypatch):
    monkeypatch.setattr(verify, "RACY_NS", 0)
    assert verify_model_files(colour) == colour.files
    assert verify_model_files(colour) == colour.files
    assert sorted(hashed) == sorted(list(colour.files) * 2)  # full: never trusts the record
    assert verify_model_files(colour, full=False) == colour.files
    assert len(hashed) == 2 * len(colour.files)
    time.sleep(0.05)
    _flip_one_byte(colour.path / "image.onnx")
    with pytest.raises(ModelError, match="image.onnx does not match the sha256"):
        verify_model_files(colour)


def test_a_model_json_that_names_other_hashes_is_refused(colour, monkeypatch):
    """Editing model.json changes the model id; a record made for the old hashes is not reused."""
    monkeypatch.setattr(verify, "RACY_NS", 0)
    Encoder(colour).encode_texts(["red"])
    other = load_model_info(colour.path)
    other = type(other)(**{**other.__dict__, "files": {**other.files, "text.onnx": "0" * 64}})
    with pytest.raises(ModelError, match="does not match the sha256"):
        Encoder(other).encode_texts(["red"])


def test_the_hashes_of_the_files_in_use_give_the_model_id(colour):
    """What the evidence exporter records: the files' hashes now, and the id they give."""
    from vidsearch.models.contract import model_id_for

    assert model_id_for(colour.name, verify_model_files(colour)) == colour.model_id
